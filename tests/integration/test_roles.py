"""Role argument specs: a value of the wrong type fails before any task of the role runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from .conftest import TOP

CASES = [
    ("armoredgate.volt.proot", {"proot_termux_wake_lock": [1, 2]}, "proot_termux_wake_lock", "Read the host's"),
    ("armoredgate.volt.proot", {"proot_install": "magic"}, "proot_install", "Read the host's"),
    ("armoredgate.volt.containers", {"volt_containers": "web"}, "volt_containers", "Put images into the store"),
    ("armoredgate.volt.systemd_host", {"systemd_host_bridge_dhcp": "maybe"}, "systemd_host_bridge_dhcp", "Look for"),
]


@pytest.mark.parametrize(("role", "variables", "named", "first_task"), CASES, ids=[c[2] for c in CASES])
def test_wrong_types_fail_before_any_task(tmp_path, role, variables, named, first_task):
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "roles": [{"role": role, **variables}]}])
    )
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    result = subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", str(play)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 2, result.stdout
    assert "Validating arguments against arg spec" in result.stdout and named in result.stdout
    assert first_task not in result.stdout, "a task of the role ran before the arguments were checked"
