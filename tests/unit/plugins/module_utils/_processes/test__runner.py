"""_runner.Runner on a real AnsibleModule running real programs."""

from __future__ import annotations

import json

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
