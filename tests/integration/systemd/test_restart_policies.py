"""restart_policy and restart_retries on a real systemd host: what the unit does when the payload
is killed, exits cleanly or keeps failing, unless-stopped against always across a reboot, and
changes applied in place. Each scenario looks at the unit itself (systemctl show, the drop-in)."""

from __future__ import annotations

import re
import shlex
import time

from ...polling import wait_for

SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]
UNIT = "volt-container@{}.service"
# Logs each start, then waits for /marks/go (written from the host) and exits with the code.
WAITER = "echo start >> /marks/log; while [ ! -e /marks/go ]; do sleep 0.1; done; exit {code}"


def unit(name: str) -> str:
    return UNIT.format(name.replace("-", "\\x2d"))


def show(target, name: str, *props: str) -> dict[str, str]:
    out = target.sh(f"systemctl show -p {','.join(props)} {shlex.quote(unit(name))}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def dropin(target, name: str) -> list[str]:
    return target.read(f"/etc/systemd/system/{unit(name)}.d/50-volt.conf").splitlines()


def info(target, name: str) -> dict:
    return target.volt("volt_container_info", name=name)["containers"][0]


def is_enabled(target, name: str) -> str:
    return target.sh(f"systemctl is-enabled {shlex.quote(unit(name))} || true").strip()


def waiter(target, name: str, code: int, **extra) -> dict:
    """A container running WAITER, its marks in a volume that outlives its runs."""
    marks = f"{target.data_dir}/marks-{name}"
    target.sh(f"mkdir -p {marks} && rm -f {marks}/log {marks}/go")
    return {
        "name": name,
        "image": "busybox",
        "command": ["/bin/sh", "-c", WAITER.format(code=code)],
        "volumes": [f"{marks}:/marks"],
        **extra,
    }


def starts(target, name: str) -> int:
    return target.read(f"{target.data_dir}/marks-{name}/log").split().count("start")


def release(target, name: str) -> None:
    target.sh(f"touch {target.data_dir}/marks-{name}/go")


def test_on_failure_restarts_a_killed_payload(target, converge):
    args = {"name": "phoenix", "image": "busybox", "command": SLEEPER, "restart_policy": "on-failure"}
    first = converge(**args)["container"]
    assert first["restart_count"] == 0
    assert {"Restart=on-failure", "RestartSec=100ms", "StartLimitIntervalSec=0"} <= set(dropin(target, "phoenix"))
    before = show(target, "phoenix", "MainPID", "NRestarts", "RestartUSec", "StartLimitIntervalUSec")
    assert before["NRestarts"] == "0" and before["RestartUSec"] == "100ms" and before["StartLimitIntervalUSec"] == "0"

    killed_at = time.monotonic()
    target.sh(f"kill -9 {' '.join(map(str, target.descendants(first['pid'])))}")

    def restarted() -> bool:
        now = show(target, "phoenix", "ActiveState", "MainPID", "NRestarts")
        return now["ActiveState"] == "active" and now["NRestarts"] == "1" and now["MainPID"] != before["MainPID"]

    assert wait_for(restarted, timeout=30)
    print(f"kill -9 to active again: {time.monotonic() - killed_at:.2f}s (as seen over ssh)")
    now = info(target, "phoenix")
    assert now["status"] == "running" and now["restart_count"] == 1 and now["pid"] not in (None, first["pid"])
    assert target.descendants(now["pid"]), "the payload runs again"
    assert target.volt(**args)["changed"] is False, "a restart by the policy is no drift"


def test_on_failure_leaves_a_clean_exit_exited(target, converge):
    args = waiter(target, "clean", 0, restart_policy="on-failure")
    converge(**args)
    release(target, "clean")
    assert wait_for(lambda: show(target, "clean", "ActiveState")["ActiveState"] == "inactive", timeout=30)
    time.sleep(1)  # ten times RestartSec: a restart would have come
    assert starts(target, "clean") == 1
    now = info(target, "clean")
    assert (now["status"], now["exited"], now["exit_code"], now["restart_count"]) == ("stopped", True, 0, 0), now
    assert now["finished_at"]


def test_restart_retries_ends_after_that_many_restarts_and_a_start_begins_again(target, converge):
    args = waiter(target, "retry", 1, restart_policy="on-failure", restart_retries=2)
    converge(**args)
    assert {"StartLimitIntervalSec=infinity", "StartLimitBurst=3", "Restart=on-failure"} <= set(dropin(target, "retry"))
    limits = show(target, "retry", "StartLimitIntervalUSec", "StartLimitBurst")
    assert limits == {"StartLimitIntervalUSec": "infinity", "StartLimitBurst": "3"}

    release(target, "retry")
    assert wait_for(lambda: show(target, "retry", "ActiveState")["ActiveState"] == "failed", timeout=30)
    time.sleep(1)
    state = show(target, "retry", "ActiveState", "NRestarts", "ExecMainStatus")
    print(f"at the start limit: {state}")
    assert state["ActiveState"] == "failed" and state["ExecMainStatus"] == "1"
    assert starts(target, "retry") == 3, "the first run and exactly 2 restarts"
    now = info(target, "retry")
    assert (now["status"], now["exited"], now["exit_code"], now["restart_count"]) == ("stopped", True, 1, 2), now

    # The module's start begins a new count (systemd alone would refuse: start limit hit).
    target.sh(f"rm {target.data_dir}/marks-retry/go")
    again = target.volt(**args)
    assert again["changed"] is True and again["actions"] == ["start"], again
    assert any("had exited on its own (exit code 1" in warning for warning in again.get("warnings", [])), again
    assert again["container"]["status"] == "running" and again["container"]["restart_count"] == 0
    assert show(target, "retry", "NRestarts")["NRestarts"] == "0"
    release(target, "retry")
    assert wait_for(lambda: show(target, "retry", "ActiveState")["ActiveState"] == "failed", timeout=30)
    assert starts(target, "retry") == 6 and info(target, "retry")["restart_count"] == 2


def test_unless_stopped_stays_stopped_across_a_reboot_and_always_comes_back(target, converge, fleet):
    kept = {"name": "kept", "image": "busybox", "command": SLEEPER, "restart_policy": "unless-stopped", "enabled": True}
    back = {"name": "back", "image": "busybox", "command": SLEEPER, "restart_policy": "always", "enabled": True}
    for args in (kept, back):
        converge(**args)
        assert "Restart=always" in dropin(target, args["name"])
        assert is_enabled(target, args["name"]) == "enabled"
    for args in (kept, back):
        stopped = converge(**dict(args, state="stopped"))
        assert stopped["actions"] == ["stop"]
        time.sleep(0.5)  # five times RestartSec: the policy must not undo the stop
        # (failed: the payload ended by SIGTERM leaves nspawn's exit status 255)
        assert show(target, args["name"], "ActiveState", "NRestarts") in (
            {"ActiveState": "inactive", "NRestarts": "0"},
            {"ActiveState": "failed", "NRestarts": "0"},
        )
    assert is_enabled(target, "kept") == "disabled", "out of the boot"
    assert is_enabled(target, "back") == "enabled"

    reboot = target.reboot(fleet)
    took = re.search(r"timing: reboot of \S+ ([0-9.]+)s", reboot.stderr + reboot.stdout)
    print(f"fleet reboot: {took.group(1) if took else '?'}s")
    assert wait_for(lambda: info(target, "back")["status"] == "running", timeout=60)
    assert show(target, "kept", "ActiveState")["ActiveState"] == "inactive", "not started at boot"
    now = info(target, "kept")
    assert now["status"] == "stopped" and now["exited"] is False, now
    assert target.volt(**dict(kept, state="stopped"))["changed"] is False
    assert target.volt(**back)["changed"] is False

    started = converge(**kept)
    assert started["actions"] == ["start"] and started["container"]["status"] == "running"
    assert is_enabled(target, "kept") == "enabled", "back in the boot"
    assert "stopped_by_volt" not in target.read("/etc/systemd/nspawn/kept.nspawn").splitlines()[0]


def test_an_administrators_start_runs_an_unless_stopped_container_the_module_stopped(target, converge):
    args = {
        "name": "admin",
        "image": "busybox",
        "command": SLEEPER,
        "restart_policy": "unless-stopped",
        "enabled": True,
    }
    converge(**args)
    converge(**dict(args, state="stopped"))
    target.sh(f"systemctl start {shlex.quote(unit('admin'))}")
    assert info(target, "admin")["status"] == "running"
    assert is_enabled(target, "admin") == "disabled", "only the module's start (or systemctl enable) puts it back"


def test_restart_settings_change_in_place(target, converge):
    base = {"name": "inplace", "image": "busybox", "command": SLEEPER}
    first = converge(restart_policy="on-failure", **base)["container"]
    target.sh(f"touch {target.rootfs('inplace')}/root/marker")

    second = converge(restart_policy="unless-stopped", restart_retries=3, **base)
    assert sorted(second["drifted"]) == ["restart_policy", "restart_retries"]
    assert second["actions"] == ["update", "stop", "start"]
    assert second["container"]["created_at"] == first["created_at"]
    assert target.exists(f"{target.rootfs('inplace')}/root/marker"), "changed in place, not recreated"
    assert {"Restart=always", "StartLimitIntervalSec=infinity", "StartLimitBurst=4"} <= set(dropin(target, "inplace"))
    assert show(target, "inplace", "Restart", "StartLimitBurst", "StartLimitIntervalUSec") == {
        "Restart": "always",
        "StartLimitBurst": "4",
        "StartLimitIntervalUSec": "infinity",
    }

    third = converge(restart_policy="no", restart_retries=0, **base)
    assert third["container"]["created_at"] == first["created_at"]
    assert {"Restart=no", "StartLimitIntervalSec=0"} <= set(dropin(target, "inplace"))
    assert not any(line.startswith("StartLimitBurst=") for line in dropin(target, "inplace"))
    assert show(target, "inplace", "Restart", "StartLimitIntervalUSec") == {
        "Restart": "no",
        "StartLimitIntervalUSec": "0",
    }
