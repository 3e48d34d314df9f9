"""systemd-only scenarios, on a systemd host of the test fleet prepared by the systemd_host role."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..conftest import TOP, prepared_target


@pytest.fixture(scope="session")
def prepared_host(fleet):
    """Runs the systemd_host role on sys1 once: voltbr0, the template unit, machines.target."""
    play = os.path.join(TOP, "tests", "integration", "systemd", "prepare.yml")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"))
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            os.path.join(fleet, "inventory.yml"),
            play,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    return fleet


@pytest.fixture(params=["systemd"])
def target(request, prepared_host, ansible_adhoc, tmp_path):
    """Overrides the shared fixture: the systemd backend only."""
    yield from prepared_target(request, ansible_adhoc, tmp_path)
