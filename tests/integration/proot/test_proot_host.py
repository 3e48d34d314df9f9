"""What the proot role relies on, on this machine's real proot binaries: volt_proot_info's check
that proot really works, and the boot hook that starts enabled containers (plugins/module_utils/_boot.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from ...polling import wait_for
from ..conftest import TOP

SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]


def test_proot_info_reports_what_the_binary_can_do(target, proot):
    before = target.snapshot()
    info = target.volt("volt_proot_info", proot_path=proot)
    assert info["changed"] is False and not info.get("failed"), info.get("msg")
    facts = info["proot"]
    assert facts["path"] == proot and facts["works"] is True and facts["problem"] == ""
    version = subprocess.run([proot, "-V"], capture_output=True, text=True, check=False).stdout
    assert facts["version"] and facts["version"] in version
    # Debian's 5.1.0 breaks every stat under -k and has no --kill-on-exit; 5.4.0 has both right.
    newer = facts["version"] != "5.1.0"
    assert facts["kernel_release_safe"] is newer
    assert facts["features"]["kill_on_exit"] is newer
    assert facts["data_dir"] == target.data_dir and facts["android"] is False
    assert target.volt("volt_proot_info", check=True, proot_path=proot)["proot"] == facts
    assert target.snapshot() == before
    leftovers = [name for name in os.listdir("/tmp") if name.startswith("volt-proot-probe-")]
    assert leftovers == [], "the probe's empty root was left behind"


def test_proot_info_says_why_a_proot_does_not_work(target, tmp_path):
    fake = tmp_path / "proot"
    fake.write_text("#!/bin/sh\necho 'proot: cannot translate paths here' >&2\nexit 1\n")
    fake.chmod(0o755)
    info = target.volt("volt_proot_info", proot_path=str(fake))
    assert not info.get("failed") and info["proot"]["works"] is False
    assert "cannot translate paths here" in info["proot"]["problem"]
    assert info["proot"]["kernel_release_safe"] is False


def test_proot_info_fails_clearly_without_proot(target, tmp_path):
    missing = tmp_path / "no-such-proot"
    info = target.volt("volt_proot_info", proot_path=str(missing))
    assert info.get("failed") and str(missing) in info["msg"] and "not an executable file" in info["msg"]


def boot_hook(target, proot):
    env = dict(os.environ, PYTHONPATH=os.path.join(TOP, "build", "collections"))
    argv = [sys.executable, "-m", "ansible_collections.armoredgate.volt.plugins.module_utils._containers._boot"]
    return subprocess.run(
        [*argv, "--data-dir", target.data_dir, "--proot-path", proot],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_boot_hook_starts_enabled_containers_only(target, proot):
    for name, enabled in (("at-boot", True), ("manual", False)):
        result = target.volt(name=name, image="busybox", command=SLEEPER, enabled=enabled, state="present")
        assert result["changed"] and result["container"]["status"] == "created"
    # enabled is applied in place: flipping it on a created container does not recreate it.
    flipped = target.volt(name="manual", image="busybox", command=SLEEPER, enabled=True, state="present")
    assert flipped["changed"] and flipped["actions"] == ["update"]
    flipped_back = target.volt(name="manual", image="busybox", command=SLEEPER, enabled=False, state="present")
    assert flipped_back["actions"] == ["update"]

    booted = boot_hook(target, proot)
    assert booted.returncode == 0 and booted.stdout.strip() == "volt-boot: started at-boot", booted.stderr
    info = {c["name"]: c for c in target.volt("volt_container_info")["containers"]}
    assert info["at-boot"]["status"] == "running" and info["manual"]["status"] == "created"
    assert target.alive(info["at-boot"]["pid"])
    # The module sees the container the hook started as its own: nothing to do.
    again = target.volt(name="at-boot", image="busybox", command=SLEEPER, enabled=True, state="started")
    assert again["changed"] is False
    assert boot_hook(target, proot).stdout == ""  # already running: not started twice

    target.volt(name="at-boot", state="stopped", stop_timeout=2)
    assert boot_hook(target, proot).stdout.strip() == "volt-boot: started at-boot"
    pid = target.volt("volt_container_info", name="at-boot")["containers"][0]["pid"]
    assert wait_for(lambda: target.alive(pid), timeout=10)


def test_boot_hook_keeps_an_unless_stopped_container_the_module_stopped(target, proot):
    for name, policy in (("kept-down", "unless-stopped"), ("back-up", "always")):
        args = {"name": name, "image": "busybox", "command": SLEEPER, "enabled": True, "restart_policy": policy}
        assert target.volt(**args)["changed"]
        assert target.volt(**dict(args, state="stopped"))["container"]["status"] == "stopped"
    booted = boot_hook(target, proot)
    assert booted.returncode == 0 and booted.stdout.strip() == "volt-boot: started back-up", booted.stderr
    info = {c["name"]: c for c in target.volt("volt_container_info")["containers"]}
    assert info["kept-down"]["status"] == "stopped" and info["back-up"]["status"] == "running"
    # One that exited on its own (not stopped by the module) is started at boot.
    ended = {"name": "ended", "image": "busybox", "command": ["sh", "-c", "sleep 0.5"], "enabled": True}
    target.volt(**ended, restart_policy="unless-stopped", restart_retries=1, start_grace_period=0)
    assert wait_for(lambda: target.volt("volt_container_info", name="ended")["containers"][0]["exited"])
    assert "volt-boot: started ended" in boot_hook(target, proot).stdout
