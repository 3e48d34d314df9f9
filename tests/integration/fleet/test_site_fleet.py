"""playbooks/site.yml across the test fleet: a systemd host, a Linux host without systemd and a
simulated Termux host (non-root), 10 containers each. Converge, then converge again with no
change, checked on the hosts' real process tables and units; then everything is removed."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import yaml

from ..conftest import TOP

HOSTS = ("sys1", "plain1", "termux1")
COUNT = 10
ROOTFS = "{{ ansible_user_dir }}/fleet-busybox"  # ansible_user_dir: site.yml's first play reads it

BUILD_ROOTFS = """set -e
mkdir -p "$1/bin" "$1/etc" "$1/tmp"
cp /bin/busybox "$1/bin/"
for a in $("$1/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$1/bin/$a"; done
"""
PREPARE = [
    {
        "name": "Build a busybox root filesystem on each host",
        "hosts": ",".join(HOSTS),
        "gather_facts": False,
        "tasks": [
            {"name": "Read the user", "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "user"]}},
            {
                "name": "Build it from the host's static busybox",
                "ansible.builtin.command": {
                    "argv": [
                        "sh",
                        "-c",
                        BUILD_ROOTFS,
                        "sh",
                        ROOTFS,
                    ],
                    "creates": ROOTFS + "/bin/busybox",
                },
            },
        ],
    }
]


def containers(state: str) -> list[dict]:
    return [
        {
            "name": f"fleet-{number:02d}",
            "image": "fleet-busybox",
            "command": ["sleep", f"7{number:05d}"],  # a unique argv per container, to find it in ps
            "env": {"SLOT": str(number)},
            "state": state,
            "stop_timeout": 2,
        }
        for number in range(COUNT)
    ]


def site(fleet, tmp_path, state: str, images_state: str = "present"):
    variables = tmp_path / f"vars-{state}.yml"
    variables.write_text(
        yaml.safe_dump(
            {
                "volt_hosts": ",".join(HOSTS),
                "volt_images": [{"name": "fleet-busybox", "path": ROOTFS, "state": images_state}],
                "volt_containers": containers(state),
            }
        )
    )
    return ansible(
        "ansible-playbook", "-i", inventory(fleet), "-e", f"@{variables}", os.path.join(TOP, "playbooks", "site.yml")
    )


def inventory(fleet):
    return os.path.join(fleet, "inventory.yml")


def ansible(*argv):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"))
    program = os.path.join(os.path.dirname(sys.executable), argv[0])
    return subprocess.run([program, *argv[1:]], capture_output=True, text=True, env=env, check=False, cwd=TOP)


def recap(result) -> dict[str, int]:
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return {
        host: int(changed) for host, changed in re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", result.stdout, re.M)
    }


def on_host(fleet, host, *argv) -> str:
    result = ansible("ansible", "-i", inventory(fleet), host, "-m", "ansible.builtin.command", "-a", " ".join(argv))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def running_sleepers(fleet, host) -> set[str]:
    """The containers' guest processes on the host, found by their unique argv."""
    return set(re.findall(r"\bsleep (7\d{5})\b", on_host(fleet, host, "ps", "-eo", "args")))


@pytest.fixture
def prepared(fleet, tmp_path):
    play = tmp_path / "prepare.yml"
    play.write_text(yaml.safe_dump(PREPARE))
    result = ansible("ansible-playbook", "-i", inventory(fleet), str(play))
    assert result.returncode == 0, result.stdout[-4000:]
    yield fleet
    recap(site(fleet, tmp_path, "absent", images_state="absent"))


def test_fleet_converges_then_reconverges_with_no_change(prepared, tmp_path):
    fleet = prepared
    first = recap(site(fleet, tmp_path, "started"))
    assert set(first) == set(HOSTS) and all(first[host] > 0 for host in HOSTS), first
    expected = {f"7{number:05d}" for number in range(COUNT)}
    for host in HOSTS:
        assert running_sleepers(fleet, host) == expected, host
    units = on_host(fleet, "sys1", "systemctl", "list-units", "--no-legend", "--state=active", "volt-container@fleet*")
    assert len(re.findall(r"volt-container@fleet\\x2d\d+\.service", units)) == COUNT  # "-" is escaped

    second = recap(site(fleet, tmp_path, "started"))
    assert second == dict.fromkeys(HOSTS, 0), second

    removed = recap(site(fleet, tmp_path, "absent", images_state="absent"))
    assert all(removed[host] > 0 for host in HOSTS)
    for host in HOSTS:
        assert running_sleepers(fleet, host) == set(), host
    units = on_host(fleet, "sys1", "systemctl", "list-units", "--no-legend", "--all", "volt-container@fleet*")
    assert "volt-container@fleet" not in units
