"""Hostile records and escaping guests on real proot: stopping or removing a container signals only
processes proven to be the container's, and ends every process the container started."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from ...polling import wait_for
from .test_proot_backend import alive

SLEEPER = ["/bin/sh", "-c", "echo started; exec sleep 1000"]
# A marker number per test run: concurrent runs never see each other's guests.
MARK = 700000 + os.getpid() % 100000


def state_path(data_dir, name):
    return os.path.join(data_dir, "containers", name, "state.json")


def read_state(data_dir, name):
    with open(state_path(data_dir, name)) as handle:
        return json.load(handle)


def write_state(data_dir, name, record):
    with open(state_path(data_dir, name), "w") as handle:
        json.dump(record, handle)


def start_time(pid):
    with open(f"/proc/{pid}/stat") as handle:
        return int(handle.read().rsplit(")", 1)[1].split()[19])


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as handle:
        return handle.read().strip()


def with_marker(marker):
    """Live guests (not proot, whose own argv holds the command) whose command line has marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if marker.encode() in b" ".join(argv) and not argv[0].endswith(b"proot"):
            found.append(int(entry))
    return found


@pytest.fixture
def stranger():
    """A process of this user that is no container's: `sleep` in a session of its own."""
    started = []

    def spawn():
        child = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        started.append(child)
        assert wait_for(lambda: alive(child.pid))
        return child.pid

    yield spawn
    for child in started:
        child.kill()
        child.wait()


@pytest.fixture
def reap():
    """Kills, at the end of a test, whatever carries the given markers (so a failure leaks nothing)."""
    markers = []
    yield markers.append
    for marker in markers:
        for pid in with_marker(marker):
            try:
                os.kill(pid, 9)
            except OSError:
                pass


def created(volt, name, rootfs, command=None):
    result = volt(name=name, rootfs=rootfs, command=command or SLEEPER, state="stopped")
    assert not result.get("failed"), result.get("msg")


# -- 1: a record never makes a stranger "the container" ---------------------------------------------
def test_record_without_start_time_never_signals_its_pid(volt, data_dir, busybox_rootfs, stranger):
    base = {"name": "cli", "rootfs": busybox_rootfs, "command": SLEEPER, "stop_timeout": 1}
    created(volt, "cli", busybox_rootfs)
    victim = stranger()
    for state in ("stopped", "absent"):
        record = read_state(data_dir, "cli")
        record.update(status="running", pid=victim, session=os.getsid(victim), boot_id=boot_id())
        record.pop("pid_start_time", None)  # as the Volt CLI or an older version writes it
        write_state(data_dir, "cli", record)
        result = volt(state=state, force=True, **base)
        assert not result.get("failed"), result.get("msg")
        time.sleep(0.3)
        assert alive(victim), f"state={state} signalled a stranger"
        assert any("start time" in warning for warning in result.get("warnings", [])), result
    assert not os.path.exists(os.path.join(data_dir, "containers", "cli"))


def test_reused_session_id_never_signals_its_members(volt, data_dir, busybox_rootfs, stranger):
    base = {"name": "sess", "rootfs": busybox_rootfs, "command": SLEEPER, "stop_timeout": 1}
    started = volt(**base)
    pid = started["container"]["pid"]
    record = read_state(data_dir, "sess")
    assert volt(state="stopped", **base)["changed"] is True
    assert wait_for(lambda: not alive(pid))
    victim = stranger()  # a later session: the recorded one's id, once free, could be its
    record.update(session=os.getsid(victim))
    write_state(data_dir, "sess", record)
    assert volt(state="stopped", **base)["changed"] is False
    time.sleep(0.3)
    assert alive(victim)
    write_state(data_dir, "sess", record)
    assert volt(state="absent", **base)["changed"] is True
    time.sleep(0.3)
    assert alive(victim)


def test_record_of_a_live_stranger_with_its_start_time_is_not_trusted(volt, data_dir, busybox_rootfs, stranger):
    base = {"name": "forged", "rootfs": busybox_rootfs, "command": SLEEPER, "stop_timeout": 1}
    created(volt, "forged", busybox_rootfs)
    victim = stranger()
    for state in ("stopped", "absent"):
        record = read_state(data_dir, "forged")
        record.update(
            status="running",
            pid=victim,
            pid_start_time=start_time(victim),
            session=os.getsid(victim),
            boot_id=boot_id(),
        )
        write_state(data_dir, "forged", record)
        info = volt("volt_container_info", name="forged")
        assert info["containers"][0]["status"] == "stopped"
        result = volt(state=state, **base)
        assert not result.get("failed"), result.get("msg")
        time.sleep(0.3)
        assert alive(victim), f"state={state} signalled a stranger"


# -- 2: guests that leave the session still end with their container --------------------------------
def test_double_forked_guests_end_on_stop_and_absent(volt, data_dir, busybox_rootfs, reap):
    marker = f"sleep {MARK + 1}"
    reap(marker)
    # The daemon double-forks into a session of its own: no parent link, no session link.
    command = ["/bin/sh", "-c", f"(setsid sh -c '{marker} & exit' &); exec sleep 1000"]
    base = {"name": "escape", "rootfs": busybox_rootfs, "command": command, "stop_timeout": 1}
    for state in ("stopped", "absent"):
        started = volt(state="started", **base)
        assert not started.get("failed"), started.get("msg")
        assert wait_for(lambda: with_marker(marker))
        result = volt(state=state, **base)
        assert result["changed"] is True, result
        proot_pid = started["container"]["pid"]
        assert wait_for(lambda pid=proot_pid: not alive(pid), timeout=3)
        assert wait_for(lambda: not with_marker(marker), timeout=3), f"a guest survived state={state}"


# -- 3: volt_exec's timeout ends guests that leave the session ---------------------------------------
def test_exec_timeout_ends_double_forked_guests(volt, busybox_rootfs, reap):
    marker = f"sleep {MARK + 2}"
    reap(marker)
    base = {"name": "exec", "rootfs": busybox_rootfs, "command": SLEEPER}
    assert not volt(**base).get("failed")
    began = time.monotonic()
    result = volt("volt_exec", name="exec", argv=["/bin/sh", "-c", f"(setsid {marker} &); sleep 100"], timeout=2)
    assert result.get("failed") and result["timed_out"] is True, result
    assert time.monotonic() - began < 30
    assert wait_for(lambda: not with_marker(marker), timeout=3), "a guest of the command survived"


def test_exec_returns_when_its_command_ends(volt, busybox_rootfs, reap):
    marker = f"sleep {MARK + 3}"
    reap(marker)
    base = {"name": "bg", "rootfs": busybox_rootfs, "command": SLEEPER}
    assert not volt(**base).get("failed")
    began = time.monotonic()
    result = volt("volt_exec", name="bg", argv=["/bin/sh", "-c", f"({marker} &); echo ran; exit 3"], timeout=60)
    assert result["rc"] == 3 and result["stdout"] == "ran" and result["timed_out"] is False, result
    assert time.monotonic() - began < 30
    # The background child keeps running, traced, until the container stops (as docker exec).
    assert with_marker(marker), "a background child did not outlive its command"
    assert not volt(name="bg", state="stopped").get("failed")
    assert wait_for(lambda: not with_marker(marker), timeout=10), "a background child outlived its container"


# -- 4: one broken record breaks neither listing nor removal -----------------------------------------
CORRUPTIONS = {
    "badpid": ("state.json", lambda record: json.dumps(dict(record, status="running", pid="12x"))),
    "notjson": ("state.json", lambda record: "this is not JSON"),
    "truncated": ("state.json", lambda record: json.dumps(record)[:20]),
    "badoptions": ("config.yaml", lambda config: json.dumps(dict(config, options=["not", "a", "mapping"]))),
    "badstart": ("state.json", lambda record: json.dumps(dict(record, status="running", pid=1, pid_start_time="x"))),
}


def corrupt(data_dir, name, record_name, make):
    path = os.path.join(data_dir, "containers", name, record_name)
    with open(path) as handle:
        value = json.load(handle)
    with open(path, "w") as handle:
        handle.write(make(value))


def test_corrupt_records_are_listed_and_removed_alone(volt, data_dir, busybox_rootfs):
    created(volt, "good", busybox_rootfs)
    for name, (record_name, make) in CORRUPTIONS.items():
        created(volt, name, busybox_rootfs)
        corrupt(data_dir, name, record_name, make)
    containers = os.path.join(data_dir, "containers")
    os.mkdir(os.path.join(containers, "lost+found"))
    with open(os.path.join(containers, "stray-file"), "w") as handle:
        handle.write("not a container\n")
    info = volt("volt_container_info")
    assert not info.get("failed"), info.get("msg")
    listed = {container["name"]: container for container in info["containers"]}
    assert listed["good"]["status"] == "created"
    for name, (record_name, _make) in CORRUPTIONS.items():
        assert listed[name]["status"] == "corrupt", listed[name]
        assert record_name in listed[name]["config"]["error"], listed[name]
    assert "lost+found" not in listed and "stray-file" not in listed
    for name in CORRUPTIONS:
        single = volt("volt_container_info", name=name)
        assert single.get("failed") or single["containers"][0]["status"] == "corrupt", single
        removed = volt(name=name, rootfs=busybox_rootfs, state="absent", force=True)
        assert removed["changed"] is True, removed
        assert not os.path.exists(os.path.join(containers, name))
    assert [c["name"] for c in volt("volt_container_info")["containers"]] == ["good"]


def test_removing_a_running_container_with_a_truncated_record_ends_it(volt, data_dir, busybox_rootfs, reap):
    marker = f"sleep {MARK + 4}"
    reap(marker)
    command = ["/bin/sh", "-c", f"(setsid sh -c '{marker} & exit' &); exec sleep 1000"]
    base = {"name": "torn", "rootfs": busybox_rootfs, "command": command, "stop_timeout": 1}
    pid = volt(**base)["container"]["pid"]
    assert wait_for(lambda: with_marker(marker))
    with open(state_path(data_dir, "torn"), "w") as handle:
        handle.write('{"status": "runn')
    removed = volt(state="absent", force=True, **base)
    assert removed["changed"] is True, removed
    assert not os.path.exists(os.path.join(data_dir, "containers", "torn"))
    assert wait_for(lambda: not alive(pid), timeout=3), "proot outlived its container"
    assert wait_for(lambda: not with_marker(marker), timeout=3), "a guest outlived its container"
