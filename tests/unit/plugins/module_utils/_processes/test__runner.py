"""_runner.Runner on a real AnsibleModule running real programs."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": {}})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    return Runner(basic.AnsibleModule(argument_spec={}))


def test_argv_is_never_a_shell_string(runner, tmp_path):
    marker = tmp_path / "x; touch pwned"
    rc, out, _err = runner.run(["/bin/echo", str(marker)])
    assert rc == 0 and out.strip() == str(marker)
    assert not (tmp_path / "pwned").exists()


def test_failure_carries_cmd_rc_and_stderr(runner):
    with pytest.raises(VoltError) as info:
        runner.run(["/bin/sh", "-c", "echo broken >&2; exit 3"])
    assert info.value.details["rc"] == 3 and "broken" in info.value.msg
    assert info.value.details["cmd"][0] == "/bin/sh"
    assert runner.run(["/bin/sh", "-c", "exit 3"], check=False)[0] == 3


def test_a_program_that_cannot_run_is_a_volt_error(runner):
    with pytest.raises(VoltError, match="could not run /nonexistent/program"):
        runner.run(["/nonexistent/program"])
    assert runner.which("sh")
    assert runner.which("surely-not-a-program-volt") is None


def test_without_a_module_programs_run_through_subprocess_alike(tmp_path):
    """The boot hook has no AnsibleModule: the same argv-only contract, errors and lookup."""
    bare = Runner()
    marker = tmp_path / "x; touch pwned"
    rc, out, _err = bare.run(["/bin/echo", str(marker)])
    assert rc == 0 and out.strip() == str(marker) and not (tmp_path / "pwned").exists()
    assert bare.run(["/bin/sh", "-c", 'printf %s "$VOLT_X"'], env={"VOLT_X": "ok"})[1] == "ok"
    assert bare.run(["/bin/cat"], data="fed")[1] == "fed"
    with pytest.raises(VoltError) as info:
        bare.run(["/bin/sh", "-c", "echo broken >&2; exit 3"])
    assert info.value.details["rc"] == 3 and "broken" in info.value.msg
    with pytest.raises(VoltError, match="could not run /nonexistent/program"):
        bare.run(["/nonexistent/program"])
    assert bare.which("sh") and bare.which("no-such-program-anywhere") is None
    assert bare.which("special", [str(tmp_path)]) is None
    (tmp_path / "special").write_text("#!/bin/sh\n")
    (tmp_path / "special").chmod(0o755)
    assert bare.which("special", [str(tmp_path)]) == str(tmp_path / "special")


def _sleepers(marker):
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if handle.read().split(b"\0")[:2] == [b"sleep", marker.encode()]:
                    found.append(int(entry))
        except OSError:
            continue
    return found


def _end(pids):
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def test_execute_returns_when_the_command_ends_not_its_background_children():
    # The background child holds stdout open: the call must not wait for it, nor end it.
    marker = "7731"
    began = time.monotonic()
    rc, out, err, timed_out = Runner().execute(
        ["/bin/sh", "-c", f"echo started; sleep {marker} & exit 4"], {"PATH": "/bin:/usr/bin"}, timeout=30
    )
    try:
        assert (rc, out, err, timed_out) == (4, b"started\n", b"", False)
        assert time.monotonic() - began < 5
        assert len(_sleepers(marker)) == 1
    finally:
        _end(_sleepers(marker))


def test_execute_takes_the_status_a_command_reports_while_its_process_lives_on():
    # As proot does: the process run outlives the command, which reports its status on a pipe.
    read_end, write_end = os.pipe()
    script = f'sh -c "echo out; echo err >&2; exit 5"; echo "$?" > /proc/self/fd/{write_end}; exec sleep 7732'
    began = time.monotonic()
    rc, out, err, timed_out = Runner().execute(
        ["/bin/sh", "-c", script], {"PATH": "/bin:/usr/bin"}, b"", 30, status=(read_end, write_end)
    )
    try:
        assert (rc, out, err, timed_out) == (5, b"out\n", b"err\n", False)
        assert time.monotonic() - began < 5 and len(_sleepers("7732")) == 1
    finally:
        _end(_sleepers("7732"))


def test_a_timeout_still_ends_everything():
    rc, _out, _err, timed_out = Runner().execute(
        ["/bin/sh", "-c", "sleep 7733 & exec sleep 7733"], {"PATH": "/bin:/usr/bin"}, timeout=0.5
    )
    assert timed_out and rc in (-15, -9)
    assert not _sleepers("7733")
