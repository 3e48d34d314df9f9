"""volt_container on real proot (Debian's 5.1.0 and 5.4.0 from sid's source), asserting on the
host's real state: the process table, the files in the container and the records on disk."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
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


def test_every_state_transition(converge, volt, data_dir, busybox_rootfs, proot):
    base = {"name": "web", "rootfs": busybox_rootfs, "command": SLEEPER}

    created = converge(state="present", **base)
    assert created["actions"] == ["create"] and created["container"]["status"] == "created"
    assert os.path.isfile(os.path.join(data_dir, "containers/web/rootfs/bin/busybox"))
    assert read_state(data_dir, "web")["status"] == "created"
    assert created["diff"]["before"] == {"state": "absent"}

    started = converge(state="started", **base)
    assert started["actions"] == ["start"]
    pid = started["container"]["pid"]
    assert alive(pid) and cmdline(pid)[0] == proot.encode()
    assert wait_for(lambda: children(pid))
    assert started["container"]["os"] == "Volt test (busybox)"
    assert started["container"]["command"] == SLEEPER

    stopped = converge(state="stopped", **base)
    assert stopped["actions"] == ["stop"]
    assert not alive(pid) and read_state(data_dir, "web")["status"] == "stopped"

    restarted = converge(state="restarted", **base)
    assert restarted["actions"] == ["start"]
    first = restarted["container"]["pid"]
    restarted = converge(state="restarted", **base)
    assert restarted["actions"] == ["stop", "start"]
    assert not alive(first) and alive(restarted["container"]["pid"])

    present = volt(state="present", **base)
    assert present["changed"] is False and present["container"]["status"] == "running"

    removed = converge(state="absent", name="web")
    assert removed["actions"] == ["remove"] and removed["container"] == {}
    assert not alive(restarted["container"]["pid"])
    assert os.listdir(os.path.join(data_dir, "containers")) == []


def test_stopped_creates_without_starting(converge, data_dir, busybox_rootfs):
    result = converge(name="cold", rootfs=busybox_rootfs, command=SLEEPER, state="stopped")
    assert result["actions"] == ["create"] and read_state(data_dir, "cold")["pid"] == 0


def test_drift_recreates_and_names_the_options(converge, volt, data_dir, busybox_rootfs):
    command = ["/bin/sh", "-c", "env > /tmp/env.txt; pwd > /tmp/pwd.txt; exec sleep 1000"]
    base = {"name": "drift", "rootfs": busybox_rootfs, "command": command}
    first = converge(env={"COLOR": "blue"}, **base)
    marker = os.path.join(data_dir, "containers/drift/rootfs/marker")
    open(marker, "w").close()

    second = converge(env={"COLOR": "red"}, workdir="/tmp", **base)
    assert second["drifted"] == ["env", "workdir"]
    assert second["actions"] == ["remove", "create", "start"]
    assert second["diff"]["before"]["config"]["env"] == {"COLOR": "blue"}
    assert second["diff"]["after"]["config"]["env"] == {"COLOR": "red"}
    assert not alive(first["container"]["pid"]) and alive(second["container"]["pid"])
    assert not os.path.exists(marker), "a recreated container gets a fresh rootfs"
    env_file = os.path.join(data_dir, "containers/drift/rootfs/tmp/env.txt")
    assert wait_for(lambda: os.path.exists(env_file) and "COLOR=red" in open(env_file).read())
    env = dict(line.split("=", 1) for line in open(env_file).read().splitlines() if "=" in line)
    assert env["CONTAINER_NAME"] == "drift" and env["HOME"] == "/root"
    assert "ANSIBLE_MODULE_ARGS" not in env and "PYTHONPATH" not in env
    assert open(os.path.join(data_dir, "containers/drift/rootfs/tmp/pwd.txt")).read().strip() == "/tmp"

    # Leaving options out does not count as drift.
    assert volt(name="drift")["changed"] is False
    # recreate forces a new container with the same config.
    forced = volt(name="drift", recreate=True)
    assert forced["changed"] is True and forced["drifted"] == []
    assert forced["container"]["config"]["env"] == {"COLOR": "red"}


def test_kill_9_of_the_guest_is_seen_and_repaired(converge, volt, busybox_rootfs):
    base = {"name": "victim", "rootfs": busybox_rootfs, "command": SLEEPER}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: children(pid))
    for guest in children(pid):
        os.kill(guest, signal.SIGKILL)
    assert wait_for(lambda: not alive(pid)), "proot exits when its guest dies"

    info = volt("volt_container_info", name="victim")
    assert info["containers"][0]["status"] == "stopped"
    back = converge(**base)
    assert back["actions"] == ["start"] and alive(back["container"]["pid"])


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


def test_container_ignoring_sigterm_stops_within_timeout(converge, volt, busybox_rootfs):
    stubborn = ["/bin/sh", "-c", "trap '' TERM; sh -c \"trap '' TERM; sleep 1000\" & while :; do sleep 1; done"]
    base = {"name": "stubborn", "rootfs": busybox_rootfs, "command": stubborn, "stop_timeout": 2}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: len(children(pid)) == 1 and children(children(pid)[0]))
    guests = children(pid) + children(children(pid)[0])
    begin = time.monotonic()
    result = volt(state="stopped", **base)
    elapsed = time.monotonic() - begin
    assert result["actions"] == ["stop"]
    assert elapsed < 2 + 1 + 0.6, f"stop took {elapsed:.2f}s"  # + module start-up
    assert not alive(pid) and not any(alive(guest) for guest in guests)


def test_ls_ps_and_writes_work_in_the_guest(converge, data_dir, busybox_rootfs):
    probe = (
        "ls / > /tmp/ls.txt; ps > /tmp/ps.txt; echo written > /root/w.txt; "
        "ls -l /bin/busybox > /tmp/ll.txt; exec sleep 1000"
    )
    converge(name="shell", rootfs=busybox_rootfs, command=["/bin/sh", "-c", probe])
    root = os.path.join(data_dir, "containers/shell/rootfs")
    assert wait_for(
        lambda: os.path.exists(os.path.join(root, "tmp/ll.txt")) and os.path.getsize(os.path.join(root, "tmp/ll.txt"))
    )
    assert {"bin", "etc", "root", "tmp"} <= set(open(os.path.join(root, "tmp/ls.txt")).read().split())
    assert (
        "sleep" in open(os.path.join(root, "tmp/ps.txt")).read()
        or "sh -c" in open(os.path.join(root, "tmp/ps.txt")).read()
    )
    assert open(os.path.join(root, "root/w.txt")).read() == "written\n"
    assert "?" not in open(os.path.join(root, "tmp/ll.txt")).read().split()[0]


def test_volumes_bind_host_directories(converge, data_dir, busybox_rootfs, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in.txt").write_text("from host\n")
    command = ["/bin/sh", "-c", "cat /mnt/shared/in.txt > /mnt/shared/out.txt; exec sleep 1000"]
    converge(name="vol", rootfs=busybox_rootfs, command=command, volumes=[f"{shared}:/mnt/shared"])
    assert wait_for(lambda: (shared / "out.txt").exists() and (shared / "out.txt").read_text() == "from host\n")


def test_entrypoint_is_detected_when_no_command(converge, data_dir, busybox_rootfs, tmp_path):
    rootfs = tmp_path / "with-init"
    shutil.copytree(busybox_rootfs, rootfs, symlinks=True)
    (rootfs / "init").write_text("#!/bin/sh\necho init ran > /tmp/init.txt\nexec sleep 1000\n")
    (rootfs / "init").chmod(0o755)
    result = converge(name="auto", rootfs=str(rootfs))
    assert result["container"]["command"] == ["/init"]
    marker = os.path.join(data_dir, "containers/auto/rootfs/tmp/init.txt")
    assert wait_for(lambda: os.path.exists(marker) and open(marker).read() == "init ran\n")


def test_bad_input_fails_clearly_and_writes_nothing(volt, data_dir, busybox_rootfs, proot, tmp_path):
    broken_proot = tmp_path / "broken-proot"
    broken_proot.write_text("#!/nonexistent/interpreter\n")
    broken_proot.chmod(0o755)
    cases = [
        ({"name": "ok", "rootfs": busybox_rootfs, "proot_path": str(broken_proot)}, "could not run"),
        ({"name": "../escape", "rootfs": busybox_rootfs}, "invalid container name '../escape'"),
        ({"name": "a" * 65, "rootfs": busybox_rootfs}, "invalid container name"),
        ({"name": "ok", "rootfs": "relative/dir"}, "rootfs"),
        ({"name": "ok", "rootfs": "/nonexistent/rootfs"}, "/nonexistent/rootfs is not a directory"),
        ({"name": "ok", "image": "missing"}, "image 'missing' is not in the image store"),
        ({"name": "ok", "image": "../etc"}, "invalid image name '../etc'"),
        ({"name": "ok"}, "give image or rootfs"),
        ({"name": "ok", "rootfs": busybox_rootfs, "env": {"X": True}}, "env value for X"),
        ({"name": "ok", "rootfs": busybox_rootfs, "volumes": ["/tmp:/x:ro"]}, "cannot make a bind read-only"),
        ({"name": "ok", "rootfs": busybox_rootfs, "ports": ["99999"]}, "'99999'"),
        ({"name": "ok", "rootfs": busybox_rootfs, "stop_timeout": -1}, "stop_timeout must be 0 or more"),
        ({"name": "ok", "rootfs": busybox_rootfs, "network": "voltbr0"}, "proot containers share the host's network"),
        (
            {"name": "ok", "rootfs": busybox_rootfs, "restart_policy": "always"},
            "restart_policy is not supported by the proot",
        ),
        ({"name": "ok", "rootfs": busybox_rootfs, "backend": "systemd"}, "backend 'systemd' is not implemented"),
        ({"name": "ok", "rootfs": busybox_rootfs, "proot_path": "/nonexistent/proot"}, "/nonexistent/proot"),
        ({"name": "ok", "rootfs": busybox_rootfs, "command": ["/no/such/program"]}, "'/no/such/program' is not an"),
        ({"name": "ok", "rootfs": busybox_rootfs, "command": "nosuchprog --x"}, "'nosuchprog' is not an"),
    ]
    for args, message in cases[:-1]:
        result = volt(**args)
        assert result.get("failed"), args
        assert message in result["msg"], (args, result["msg"])
        assert not os.path.exists(os.path.join(data_dir, "containers", "ok")), args
        assert not os.path.exists(os.path.join(data_dir, "containers", "..", "escape"))
    if os.path.isdir(os.path.join(data_dir, "containers")):
        assert os.listdir(os.path.join(data_dir, "containers")) == []


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


def test_info_lists_and_tails_logs(volt, busybox_rootfs):
    volt(name="one", rootfs=busybox_rootfs, command=SLEEPER)
    volt(name="two", rootfs=busybox_rootfs, command=SLEEPER, state="stopped")
    info = volt("volt_container_info", log_lines=3)
    assert [c["name"] for c in info["containers"]] == ["one", "two"]
    one = info["containers"][0]
    assert one["status"] == "running" and one["backend"] == "proot"
    assert wait_for(
        lambda: volt("volt_container_info", name="one", log_lines=1)["containers"][0]["logs"] == ["started"]
    )
    assert info["containers"][1]["logs"] == []
    assert volt("volt_container_info", name="nope")["exists"] is False
    assert volt("volt_container_info", name="bad/name").get("failed")


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
