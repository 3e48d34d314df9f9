"""Supervision on the simulated Termux host, as a phone has it: site.yml with the proot role's
Termux:Boot hook, then a real reboot of the host. An `always` container comes back under its
supervisor, an `unless-stopped` one the module stopped stays stopped, a re-converge changes
nothing, and a killed payload is restarted by its supervisor."""

from __future__ import annotations

import os
import re
import subprocess

import yaml

from ...polling import wait_for
from .test_site_fleet import PREPARE, ROOTFS, TOP, ansible, inventory, on_host, recap

HOST = "termux1"
KEEPER, RESTING = "sleep 7200001", "sleep 7200002"


def containers(resting_state: str) -> list[dict]:
    common = {"image": "fleet-busybox", "enabled": True, "stop_timeout": 2, "start_grace_period": 0.2}
    return [
        {"name": "keeper", "command": KEEPER.split(), "restart_policy": "always", "state": "started", **common},
        {
            "name": "resting",
            "command": RESTING.split(),
            "restart_policy": "unless-stopped",
            "state": resting_state,
            **common,
        },
    ]


def site(fleet, tmp_path, volt_containers, images_state="present"):
    variables = tmp_path / "vars.yml"
    variables.write_text(
        yaml.safe_dump(
            {
                "volt_hosts": HOST,
                "proot_boot_hook": True,
                "volt_images": [{"name": "fleet-busybox", "path": ROOTFS, "state": images_state}],
                "volt_containers": volt_containers,
            }
        )
    )
    playbook = os.path.join(TOP, "playbooks", "site.yml")
    return ansible("ansible-playbook", "-i", inventory(fleet), "-l", HOST, "-e", f"@{variables}", playbook)


def processes(fleet) -> str:
    return on_host(fleet, HOST, "ps", "-eo", "pid,args")


def test_termux_boot_brings_always_back_and_keeps_unless_stopped_down(fleet, tmp_path):
    play = tmp_path / "prepare.yml"
    prepare = [dict(PREPARE[0], hosts=HOST)]
    play.write_text(yaml.safe_dump(prepare))
    assert ansible("ansible-playbook", "-i", inventory(fleet), str(play)).returncode == 0
    try:
        assert recap(site(fleet, tmp_path, containers("started")))[HOST] > 0
        assert recap(site(fleet, tmp_path, containers("stopped")))[HOST] > 0  # the module stops resting
        table = processes(fleet)
        assert KEEPER in table and RESTING not in table
        assert len(re.findall(r"volt-supervise \S+/keeper ", table)) >= 1

        script = os.path.join(TOP, "tests", "fleet", "fleet")
        rebooted = subprocess.run([script, "reboot", "--dir", fleet, HOST], capture_output=True, text=True, check=False)
        assert rebooted.returncode == 0, rebooted.stderr
        # Termux:Boot runs the hook after sshd is up: wait for it.
        assert wait_for(lambda: KEEPER in processes(fleet), timeout=60)
        table = processes(fleet)
        assert RESTING not in table, table
        assert re.search(r"volt-supervise \S+/keeper ", table), table
        assert recap(site(fleet, tmp_path, containers("stopped")))[HOST] == 0

        # The supervisor brings a killed payload back (no playbook run involved).
        (pid,) = re.findall(rf"^\s*(\d+) {KEEPER}$", processes(fleet), re.M)
        on_host(fleet, HOST, "kill", "-9", pid)
        assert wait_for(lambda: re.findall(rf"^\s*(\d+) {KEEPER}$", processes(fleet), re.M) not in ([], [pid]))
    finally:
        absent = [dict(item, state="absent") for item in containers("absent")]
        recap(site(fleet, tmp_path, absent, images_state="absent"))
    assert "volt-supervise" not in processes(fleet)
