"""The supervisor script with the host's real sh, sleep and mv: restarts, backoff, the retry
limit, exit records, a stop, and log rotation that loses no line."""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _supervisor, _trees

from .....polling import wait_for

SH = shutil.which("sh")


def start(directory, payload, probe=None, **settings):
    (directory / "logs").mkdir(exist_ok=True)
    log = directory / "logs" / "current.log"
    log.touch()
    _supervisor.prepare(str(directory))
    if probe:
        _supervisor.write_probe(str(directory), probe)
    options = {"policy": "no", "retries": 0, "max_size": 1 << 20, "max_files": 3}
    options.update(settings)
    argv = _supervisor.argv(
        SH,
        str(directory),
        payload,
        sleep=shutil.which("sleep"),
        mv=shutil.which("mv"),
        log_size=log.stat().st_size,
        **options,
    )
    pid = _trees.daemonize(argv, {}, str(log))
    SESSIONS[pid] = _trees.session_of(pid)
    return pid, _trees.start_time(pid)


SESSIONS: dict[int, int | None] = {}


def session(pid):
    """The supervisor's session: itself, its pump and its payload (daemonize's leader is gone)."""
    return [proc for proc in _trees.processes().values() if proc.session == SESSIONS[pid]]


def read(directory, name):
    path = directory / name
    return path.read_text().strip() if path.exists() else None


def ended(pid, started):
    return not _trees.is_alive(pid, started) and not session(pid)


def test_no_policy_records_the_exit_and_leaves_nothing(tmp_path):
    pid, started = start(tmp_path, [SH, "-c", "echo hi; exit 3"])
    assert wait_for(lambda: ended(pid, started), timeout=10)
    assert read(tmp_path, "exit") == "3" and read(tmp_path, "restarts") == "0"
    assert (tmp_path / "logs" / "current.log").read_text() == "hi\n"
    assert _supervisor.read_count(str(tmp_path)) == 0


def test_on_failure_stops_at_the_retry_limit_with_backoff(tmp_path):
    began = time.monotonic()
    pid, started = start(tmp_path, [SH, "-c", "echo run; exit 1"], policy="on-failure", retries=3)
    assert wait_for(lambda: ended(pid, started), timeout=20)
    # 0.1 + 0.2 + 0.4 s of backoff before the three restarts.
    assert time.monotonic() - began >= 0.7
    assert read(tmp_path, "exit") == "1" and _supervisor.read_count(str(tmp_path)) == 3
    log = (tmp_path / "logs" / "current.log").read_text()
    assert log.count("run\n") == 4 and "[volt] restart 3 after exit status 1" in log


def test_on_failure_does_not_restart_a_clean_exit(tmp_path):
    pid, started = start(tmp_path, [SH, "-c", "exit 0"], policy="on-failure")
    assert wait_for(lambda: ended(pid, started), timeout=10)
    assert read(tmp_path, "exit") == "0" and _supervisor.read_count(str(tmp_path)) == 0


def test_always_restarts_a_killed_payload_and_a_stop_ends_everything(tmp_path):
    pid, started = start(tmp_path, ["/bin/sleep", "1000"], policy="always")
    try:

        def payload():
            kids = [proc for proc in session(pid) if (_trees.cmdline(proc.pid) or [""])[0] == "/bin/sleep"]
            return kids[0] if kids and _trees.cmdline(kids[0].pid) == ["/bin/sleep", "1000"] else None

        assert wait_for(payload)
        first = payload()
        os.kill(first.pid, signal.SIGKILL)
        assert wait_for(lambda: payload() is not None and payload().pid != first.pid, timeout=10)
        assert read(tmp_path, "exit") == "137" and _supervisor.read_count(str(tmp_path)) == 1
        # A stop: the supervisor first (it restarts nothing after), then the payload.
        _trees.send((pid, started), signal.SIGTERM)
        second = payload()
        _trees.send(second.ident, signal.SIGTERM)
        assert wait_for(lambda: ended(pid, started), timeout=10)
        assert read(tmp_path, "exit") == "143" and (tmp_path / "supervisor.done").exists()
    finally:
        for proc in session(pid):
            os.kill(proc.pid, signal.SIGKILL)


def test_a_stop_during_the_backoff_ends_its_sleep(tmp_path):
    pid, started = start(tmp_path, [SH, "-c", "exit 1"], policy="always")
    assert wait_for(lambda: _supervisor.read_count(str(tmp_path)) >= 5, timeout=20)  # backoff now 3.2 s
    _trees.send((pid, started), signal.SIGTERM)
    assert wait_for(lambda: ended(pid, started), timeout=5)


@pytest.mark.parametrize("files", [1, 3])
def test_rotation_keeps_the_limits_and_loses_no_line(tmp_path, files):
    count = 30000
    payload = [SH, "-c", f"i=0; while [ $i -lt {count} ]; do i=$((i+1)); echo line-$i; done"]
    pid, started = start(tmp_path, payload, max_size=16384, max_files=files)
    assert wait_for(lambda: ended(pid, started), timeout=60)
    logs = tmp_path / "logs"
    kept = sorted(logs.glob("current.log*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert len(kept) == files and all(path.stat().st_size <= 16384 for path in kept)
    lines = [line for path in kept for line in path.read_text().splitlines()]
    # What is kept is the end of the output, whole lines, in order, none missing between files.
    first = int(lines[0].split("-")[1])
    assert lines == [f"line-{i}" for i in range(first, count + 1)]
    assert not list(logs.glob("current.log.%d" % files))


def test_health_checks_count_failures_in_a_row_and_recover(tmp_path):
    flag = tmp_path / "healthy"
    check = {"test": ["unused"], "interval": 0.2, "timeout": 2, "retries": 2, "start_period": 0}
    health = _supervisor.health_settings(check, False, 15, shutil.which("timeout"), SH)
    probe = [SH, "-c", f"echo probing; test -e {flag}"]
    pid, started = start(tmp_path, ["/bin/sleep", "1000"], probe=probe, health=health)
    try:
        assert wait_for(lambda: (_supervisor.read_health(str(tmp_path)) or {}).get("status") == "starting")
        assert wait_for(lambda: _supervisor.read_health(str(tmp_path))["status"] == "unhealthy", timeout=10)
        state = _supervisor.read_health(str(tmp_path))
        assert state["failing_streak"] >= 2 and state["last_exit_code"] == 1 and state["last_output"] == "probing\n"
        flag.touch()
        assert wait_for(lambda: _supervisor.read_health(str(tmp_path))["status"] == "healthy", timeout=10)
        assert _supervisor.read_health(str(tmp_path))["failing_streak"] == 0
    finally:
        _trees.send((pid, started), signal.SIGTERM)
        for proc in session(pid):
            if (_trees.cmdline(proc.pid) or [""])[0] == "/bin/sleep":
                os.kill(proc.pid, signal.SIGTERM)
    assert wait_for(lambda: ended(pid, started), timeout=10)  # the checker ends with the supervisor


def test_with_a_health_check_a_killed_payload_is_still_restarted_at_once(tmp_path):
    # The supervisor waits on its health timer then, and the payload's end must wake it.
    check = {"test": ["unused"], "interval": 30, "timeout": 2, "retries": 1, "start_period": 0}
    health = _supervisor.health_settings(check, False, 15, shutil.which("timeout"), SH)
    pid, started = start(tmp_path, ["/bin/sleep", "1000"], probe=[SH, "-c", "exit 0"], policy="always", health=health)
    try:

        def payload():
            kids = [proc for proc in session(pid) if _trees.cmdline(proc.pid) == ["/bin/sleep", "1000"]]
            return kids[0] if kids else None

        assert wait_for(payload)
        first = payload()
        began = time.monotonic()
        os.kill(first.pid, signal.SIGKILL)
        assert wait_for(lambda: payload() is not None and payload().pid != first.pid, timeout=10)
        assert time.monotonic() - began < 5  # not after the 30 s health interval
        assert read(tmp_path, "exit") == "137" and _supervisor.read_count(str(tmp_path)) == 1
        _trees.send((pid, started), signal.SIGTERM)
        _trees.send(payload().ident, signal.SIGTERM)
        assert wait_for(lambda: ended(pid, started), timeout=10)  # the health timer goes too
        assert read(tmp_path, "exit") == "143"
    finally:
        for proc in session(pid):
            os.kill(proc.pid, signal.SIGKILL)
