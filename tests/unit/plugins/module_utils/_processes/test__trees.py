"""Real processes, no mocks: daemonize, liveness by start time, and tree termination."""

from __future__ import annotations

import os
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _trees

from .....polling import wait_for

IGNORE_TERM = "trap '' TERM; sh -c \"trap '' TERM; while :; do sleep 0.1; done\" & while :; do sleep 0.1; done"


def test_daemonize_detaches_and_logs(tmp_path):
    log = tmp_path / "out.log"
    pid = _trees.daemonize(["/bin/sh", "-c", "echo hello; exec sleep 30"], {"PATH": "/bin:/usr/bin"}, str(log))
    try:
        started = _trees.start_time(pid)
        assert _trees.is_alive(pid, started, _trees.boot_id())
        assert _trees.session_of(pid) != os.getsid(0)  # its own session
        assert wait_for(lambda: log.read_text() == "hello\n")
    finally:
        _trees.terminate_tree(pid, started, _trees.session_of(pid), 2)
    assert not _trees.is_alive(pid, started)


def test_failed_exec_is_reported(tmp_path):
    with pytest.raises(VoltError, match="could not start /nonexistent"):
        _trees.daemonize(["/nonexistent"], {}, str(tmp_path / "log"))


def test_reused_pid_is_not_alive():
    pid = os.getpid()
    started = _trees.start_time(pid)
    assert _trees.is_alive(pid, started)
    assert not _trees.is_alive(pid, started + 1)
    assert not _trees.is_alive(pid, started, "another-boot")
    assert not _trees.is_alive(0, None)


def test_tree_stops_with_sigkill_after_timeout(tmp_path):
    pid = _trees.daemonize(["/bin/sh", "-c", IGNORE_TERM], {"PATH": "/bin:/usr/bin"}, str(tmp_path / "log"))
    started, session = _trees.start_time(pid), _trees.session_of(pid)
    assert wait_for(lambda: len(_trees.tree(pid, session, started)) >= 2)
    members = _trees.tree(pid, session, started)
    begin = time.monotonic()
    assert _trees.terminate_tree(pid, started, session, 0.5) == "killed"
    assert 0.5 <= time.monotonic() - begin < 0.5 + 3  # SIGKILL at the timeout; slack for a loaded machine
    assert not any(_trees.is_alive(member, None) for member in members)


def test_tree_finds_orphans_by_session(tmp_path):
    # The shell exits at once; its background child is orphaned but keeps the session.
    pid = _trees.daemonize(
        ["/bin/sh", "-c", "sleep 30 & sleep 0.3; exit 0"], {"PATH": "/bin:/usr/bin"}, str(tmp_path / "l")
    )
    started, session = _trees.start_time(pid), _trees.session_of(pid)
    assert wait_for(lambda: not _trees.is_alive(pid, started))
    orphans = _trees.tree(pid, session, started)
    assert len(orphans) == 1
    assert _trees.terminate_tree(pid, started, session, 2) == "terminated"
    assert not _trees.is_alive(orphans[0], None)


def test_the_first_signal_goes_to_one_process_and_is_waited_for(tmp_path):
    log = tmp_path / "log"
    script = (
        "trap 'echo got QUIT; exit 0' QUIT; trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    )
    pid = _trees.daemonize(["/bin/sh", "-c", script], {"PATH": "/bin:/usr/bin"}, str(log))
    assert wait_for(lambda: "ready" in log.read_text())
    ident = (pid, _trees.start_time(pid))
    outcome = _trees.end_group(lambda: ({ident}, set()), 5, first=(ident, 3))
    assert outcome == "terminated" and "got QUIT" in log.read_text() and "got TERM" not in log.read_text()
