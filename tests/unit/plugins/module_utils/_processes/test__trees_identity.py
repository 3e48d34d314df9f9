"""Real processes, no mocks: a signal reaches only the process that was identified, and guests
that a tracer (proot) keeps tracing end with it even after they left its session."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _trees
from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

from .....polling import wait_for

PROOT = "/usr/bin/proot"
ENV = {"PATH": "/usr/bin:/bin", "PROOT_NO_SECCOMP": "1"}
MARK = 800000 + os.getpid() % 100000
needs_proot = pytest.mark.skipif(not os.access(PROOT, os.X_OK), reason="needs proot")


def with_marker(marker):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read().replace(b"\0", b" ") and _trees.is_alive(int(entry), None):
                    found.append(int(entry))
        except (OSError, ValueError):
            pass
    return found


@pytest.fixture
def reap():
    markers = []
    yield markers.append
    for marker in markers:
        for pid in with_marker(marker):
            os.kill(pid, 9)


def test_a_stale_identity_is_never_signalled():
    """A (pid, start time) whose start time no longer matches names a stranger: nothing is sent."""
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        ident = (stranger.pid, _trees.start_time(stranger.pid) + 1)
        assert _trees.end_group(lambda: ({ident}, set()), 0.2) == "none"
        time.sleep(0.2)
        assert _trees.is_alive(stranger.pid, None)
    finally:
        stranger.kill()
        stranger.wait()


@needs_proot
def test_tree_of_a_tracer_includes_guests_that_left_its_session(reap):
    """A guest that double-forks into a new session is no descendant and no session member of
    proot, yet proot traces it: terminate_tree ends it, and proot last."""
    marker = f"sleep {MARK + 1}"
    reap(marker)
    child = subprocess.Popen(
        [PROOT, "-r", "/", "/bin/sh", "-c", f"(setsid {marker} &); exec sleep 1000"], env=ENV, start_new_session=True
    )
    try:
        # proot's own argv names the marker too
        assert wait_for(lambda: set(with_marker(marker)) - {child.pid})
        started = _trees.start_time(child.pid)
        guests = set(with_marker(marker)) - {child.pid}
        assert guests and guests <= set(_trees.tree(child.pid, child.pid, started))
        assert _trees.terminate_tree(child.pid, started, child.pid, 1) in ("terminated", "killed")
        assert wait_for(lambda: not with_marker(marker), timeout=3)
    finally:
        child.kill()
        child.wait()


@needs_proot
def test_execute_returns_when_the_command_ends(reap):
    """kill_on_exit: a background child of the command does not hold proot (and the call) open."""
    marker = f"sleep {MARK + 2}"
    reap(marker)
    began = time.monotonic()
    rc, out, _err, timed_out = Runner().execute(
        [PROOT, "-r", "/", "/bin/sh", "-c", f"(setsid {marker} &); echo ran; exit 3"], ENV, None, 60, kill_on_exit=True
    )
    assert (rc, out.strip(), timed_out) == (3, b"ran", False)
    assert time.monotonic() - began < 20
    assert wait_for(lambda: not with_marker(marker), timeout=3)


@needs_proot
def test_execute_timeout_ends_guests_that_left_the_session(reap):
    marker = f"sleep {MARK + 3}"
    reap(marker)
    _rc, _out, _err, timed_out = Runner().execute(
        [PROOT, "-r", "/", "/bin/sh", "-c", f"(setsid {marker} &); sleep 100"], ENV, None, 1
    )
    assert timed_out
    assert wait_for(lambda: not with_marker(marker), timeout=3)
