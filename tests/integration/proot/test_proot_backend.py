"""volt_container on real proot (Debian's 5.1.0 and 5.4.0 from sid's source), asserting on the
host's real state: the process table, the files in the container and the records on disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.request

import pytest

from ...polling import wait_for
from ..conftest import tree_snapshot

SLEEPER = ["/bin/sh", "-c", "echo started; exec sleep 1000"]


def state_file(data_dir, name):
    return os.path.join(data_dir, "containers", name, "state.json")


def read_state(data_dir, name):
    with open(state_file(data_dir, name)) as handle:
        return json.load(handle)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    if int(handle.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except OSError:
                pass
    return found


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().split(b"\0")


def test_guests_left_by_a_killed_proot_are_ended(converge, volt, busybox_rootfs):
    base = {"name": "orphans", "rootfs": busybox_rootfs, "command": SLEEPER}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: children(pid))
    guests = children(pid)
    os.kill(pid, signal.SIGKILL)  # the guest survives, untraced
    assert wait_for(lambda: not alive(pid)) and all(alive(guest) for guest in guests)
    assert volt("volt_container_info", name="orphans")["containers"][0]["status"] == "stopped"
    assert all(alive(guest) for guest in guests), "the info module changes nothing"
    stopped = volt(state="stopped", **base)
    assert stopped["changed"] is False
    assert wait_for(lambda: not any(alive(guest) for guest in guests))


def test_stale_running_state_is_reconciled(volt, data_dir, busybox_rootfs):
    base = {"name": "stale", "rootfs": busybox_rootfs, "command": SLEEPER}
    assert volt(state="stopped", **base)["changed"] is True

    # A record that says running for a dead pid, then for a live pid that is someone else.
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    for pid, start_time in ((dead, 12345), (os.getpid(), 1)):
        record = read_state(data_dir, "stale")
        record.update(status="running", pid=pid, pid_start_time=start_time)
        with open(state_file(data_dir, "stale"), "w") as handle:
            json.dump(record, handle)
        before = tree_snapshot(data_dir)
        info = volt("volt_container_info", name="stale")
        assert info["changed"] is False and info["containers"][0]["status"] == "stopped"
        assert tree_snapshot(data_dir) == before, "the info module never writes"
        assert volt(check=True, state="stopped", **base)["changed"] is False
        assert volt(state="stopped", **base)["changed"] is False
        assert read_state(data_dir, "stale")["status"] == "stopped", "a real run corrects the record"
        assert alive(os.getpid())

    started = volt(**base)
    assert started["actions"] == ["start"] and alive(started["container"]["pid"])


def test_what_proot_cannot_do_fails_clearly_and_writes_nothing(target, volt, busybox_rootfs, tmp_path):
    broken_proot = tmp_path / "broken-proot"
    broken_proot.write_text("#!/nonexistent/interpreter\n")
    broken_proot.chmod(0o755)
    base = {"name": "ok", "rootfs": busybox_rootfs}
    cases = [
        ({"proot_path": "/nonexistent/proot"}, "/nonexistent/proot"),
        ({"volumes": ["/tmp:/x:ro"]}, "cannot make a bind read-only"),
        ({"network": "voltbr0"}, "proot containers share the host's network"),
        ({"boot": True}, "boot is not supported by the proot"),
    ]
    before = target.snapshot()
    for args, message in cases:
        result = volt(**base, **args)
        assert result.get("failed"), args
        assert message in result["msg"], (args, result["msg"])
    assert target.snapshot() == before, "a failed run wrote something"

    # proot that cannot even be run fails only after the container was created: it is rolled back.
    result = volt(**base, proot_path=str(broken_proot))
    assert result.get("failed") and "could not run" in result["msg"]
    assert os.listdir(os.path.join(target.data_dir, "containers")) == []


def test_limits_are_ignored_with_a_warning(converge, volt, busybox_rootfs):
    result = converge(name="limits", rootfs=busybox_rootfs, command=SLEEPER, memory="64M", cpus=0.5)
    assert "memory" not in result["container"]["config"]
    again = volt(name="limits", rootfs=busybox_rootfs, command=SLEEPER, memory="64M", cpus=0.5)
    assert any("memory is not enforced by the proot backend" in w for w in again.get("warnings", []))


def test_corrupt_records_need_force(volt, data_dir, busybox_rootfs):
    base = {"name": "broken", "rootfs": busybox_rootfs, "command": SLEEPER}
    volt(state="stopped", **base)
    with open(state_file(data_dir, "broken"), "w") as handle:
        handle.write("{half a rec")
    failed = volt(**base)
    assert failed.get("failed") and "state.json" in failed["msg"] and "force: true" in failed["msg"]
    info = volt("volt_container_info")
    assert info["containers"][0]["status"] == "corrupt"
    fixed = volt(force=True, **base)
    assert fixed["actions"] == ["remove", "create", "start"] and alive(fixed["container"]["pid"])
    assert read_state(data_dir, "broken")["status"] == "running"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ports(converge, volt, busybox_rootfs, proot, tmp_path):
    has_mapping = "--port" in subprocess.run([proot, "--help"], check=False, capture_output=True, text=True).stdout
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from volt\n")
    base = {"name": "web", "rootfs": busybox_rootfs, "volumes": [f"{www}:/srv/www"]}
    host, guest = free_port(), free_port()
    if not has_mapping:
        command = ["httpd", "-f", "-p", f"127.0.0.1:{guest}", "-h", "/srv/www"]
        refused = volt(ports=[f"{host}:{guest}"], command=command, **base)
        assert refused.get("failed") and f"use the same port on both sides, e.g. '{guest}:{guest}'" in refused["msg"]
        ports, listen, url = [str(host)], f"127.0.0.1:{host}", f"http://127.0.0.1:{host}/"
    else:
        ports, listen, url = [f"{host}:{guest}"], f"127.0.0.1:{guest}", f"http://127.0.0.1:{host}/"
    converge(ports=ports, command=["httpd", "-f", "-p", listen, "-h", "/srv/www"], **base)

    def answers():
        try:
            return urllib.request.urlopen(url, timeout=1).read() == b"hello from volt\n"
        except OSError:
            return False

    assert wait_for(answers)


def test_kernel_release_is_optional(converge, data_dir, busybox_rootfs):
    command = ["/bin/sh", "-c", "uname -r > /tmp/uname.txt; exec sleep 1000"]
    converge(name="kr", rootfs=busybox_rootfs, command=command, kernel_release="5.15.0")
    out = os.path.join(data_dir, "containers/kr/rootfs/tmp/uname.txt")
    assert wait_for(lambda: os.path.exists(out) and os.path.getsize(out))
    assert open(out).read().strip() == "5.15.0"


def test_symlinks_in_the_source_are_copied_not_followed(volt, data_dir, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "ok").write_text("x")
    os.symlink("/etc/shadow", source / "link")
    result = volt(name="linky", rootfs=str(source), command=SLEEPER, state="present")
    assert result["changed"]
    copied = os.path.join(data_dir, "containers/linky/rootfs/link")
    assert os.path.islink(copied) and os.readlink(copied) == "/etc/shadow"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_failed_create_leaves_nothing_behind(volt, busybox_rootfs, tmp_path):
    """A disk that fills up halfway through the copy: the module fails, and nothing remains."""
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "volt-test", str(small)], check=True)
    try:
        source = tmp_path / "big"
        shutil.copytree(busybox_rootfs, source, symlinks=True)
        (source / "filler").write_bytes(os.urandom(4 * 1024 * 1024))
        data_dir = str(small / "volt")
        result = volt(name="full", rootfs=str(source), command=SLEEPER, data_dir=data_dir)
        assert result.get("failed") and "No space left on device" in result["msg"], result
        assert os.listdir(os.path.join(data_dir, "containers")) == []
        assert volt("volt_container_info", data_dir=data_dir)["containers"] == []
    finally:
        subprocess.run(["umount", str(small)], check=True)
