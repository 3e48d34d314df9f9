"""backend: auto (plugins/module_utils/_backends/_select.py) on real hosts: systemd where
systemd is PID 1 (and nspawn is there and we are root), proot on a host without systemd.
Both hosts are reached over SSH, as users' fleets are."""

from __future__ import annotations

import os

import pytest

from .conftest import FLEET_DATA_DIR, UNSAFE_PROOT
from .targets import FleetProot, FleetSystemd


@pytest.mark.parametrize(
    ("host", "kind", "expected"), [("sys1", FleetSystemd, "systemd"), ("plain1", FleetProot, "proot")]
)
def test_auto_picks_the_backend_the_host_can_run(fleet, ansible_adhoc, host, kind, expected):
    target = kind(
        f"auto@{host}",
        ansible_adhoc,
        host,
        os.path.join(fleet, "inventory.yml"),
        data_dir=FLEET_DATA_DIR,
        ssh_config=os.path.join(fleet, "ssh_config"),
        extra=UNSAFE_PROOT.get(f"proot@{host}"),
    )
    target.cleanup()
    target.prepare()
    try:
        args = {"name": "picked", "image": "busybox", "command": ["sleep", "1000"], "backend": "auto"}
        result = target.volt(**args)
        assert not result.get("failed"), result.get("msg")
        assert result["container"]["backend"] == expected and result["container"]["status"] == "running"
        assert target.alive(result["container"]["pid"])
        assert target.volt(**args)["changed"] is False
        listed = target.volt("volt_container_info", backend="auto")["containers"]
        assert [(c["name"], c["backend"]) for c in listed] == [("picked", expected)]
    finally:
        target.cleanup()
