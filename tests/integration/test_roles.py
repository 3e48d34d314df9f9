"""Role argument specs: a value of the wrong type fails before any task of the role runs."""

from __future__ import annotations

import hashlib
import os
import re
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


def proot_role(tmp_path, **variables):
    play = tmp_path / "proot.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "roles": [
                        {"role": "armoredgate.volt.proot", "proot_data_dir": str(tmp_path / "volt"), **variables}
                    ],
                    "post_tasks": [{"ansible.builtin.debug": {"var": "proot_facts"}}],
                }
            ]
        )
    )
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"))
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    interpreter = f"ansible_python_interpreter={sys.executable}"
    return subprocess.run(
        [playbook, "-i", "localhost,", "-c", "local", "-e", interpreter, str(play)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )


def test_proot_binary_from_a_url_is_verified_then_installed_and_checked(tmp_path):
    """The Android-style install: a static binary from a URL with its checksum, to a given place."""
    source = os.environ.get("VOLT_PROOT_54") or "/usr/bin/proot"
    with open(source, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    dest = tmp_path / "bin" / "proot"
    dest.parent.mkdir()
    url = f"file://{source}"
    wrong = proot_role(
        tmp_path,
        proot_binary_url=url,
        proot_binary_checksum="sha256:" + "0" * 64,
        proot_binary_dest=str(dest),
    )
    assert wrong.returncode == 2 and "checksum" in wrong.stdout.lower() and not dest.exists()
    args = {
        "proot_binary_url": f"file://{source}",
        "proot_binary_checksum": f"sha256:{digest}",
        "proot_binary_dest": str(dest),
    }
    first = proot_role(tmp_path, **args)
    assert first.returncode == 0, first.stdout[-3000:]
    assert dest.read_bytes() == open(source, "rb").read() and os.access(dest, os.X_OK)
    assert f"path: {dest}" in first.stdout and "works: true" in first.stdout
    again = proot_role(tmp_path, **args)
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0", again.stdout), again.stdout[-2000:]
    missing = proot_role(tmp_path, proot_binary_url=url, proot_binary_dest=str(dest))
    assert missing.returncode == 2 and "proot_binary_checksum" in missing.stdout
