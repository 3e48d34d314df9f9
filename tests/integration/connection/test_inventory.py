"""The volt_containers inventory plugin: containers on this machine and on a fleet host become
inventory hosts that the volt connection reaches."""

from __future__ import annotations

import json
import os
import shlex
import sys

import yaml

from .test_connection import PROOT_OPTIONS, run

BUSYBOX = """set -e
rm -rf "$1"; mkdir -p "$1/bin" "$1/etc" "$1/tmp"; cp /bin/busybox "$1/bin/"
for a in sh sleep echo; do ln -s busybox "$1/bin/$a"; done
"""


def plain(value):
    """ansible-inventory marks strings from inventory sources as unsafe ({"__ansible_unsafe": s})."""
    if isinstance(value, dict) and set(value) == {"__ansible_unsafe"}:
        return value["__ansible_unsafe"]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def ansible(target: list[str], module: str, **args) -> str:
    text = json.dumps(args) if "argv" in args else " ".join(f"{k}={shlex.quote(str(v))}" for k, v in args.items())
    result = run(["ansible", *target, "-m", module, "-a", text])
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_containers_of_several_hosts_become_reachable_hosts(fleet, tmp_path):
    here = ["-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", "localhost"]
    plain1 = ["-i", os.path.join(fleet, "inventory.yml"), "plain1"]
    local_data, local_rootfs = tmp_path / "volt", tmp_path / "busybox"
    ansible(here, "ansible.builtin.command", argv=["sh", "-c", BUSYBOX, "sh", str(local_rootfs)])
    ansible(plain1, "ansible.builtin.command", argv=["sh", "-c", BUSYBOX, "sh", "/root/inv-busybox"])
    container = "armoredgate.volt.volt_container"
    sleeper = {"command": "sleep 100000"}
    local_proot, plain1_proot = PROOT_OPTIONS["local-proot"], PROOT_OPTIONS["plain1-proot"]
    ansible(
        here,
        container,
        name="invl",
        backend="proot",
        data_dir=local_data,
        rootfs=local_rootfs,
        **sleeper,
        **local_proot,
    )
    ansible(plain1, container, name="inv1", rootfs="/root/inv-busybox", **sleeper, **plain1_proot)
    ansible(plain1, container, name="inv2", rootfs="/root/inv-busybox", state="present", **plain1_proot)
    config = tmp_path / "test.volt_containers.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugin": "armoredgate.volt.volt_containers",
                "container_hosts": [
                    {"host": "local", "backend": "proot", "data_dir": str(local_data)},
                    {"host": "plain1", "ssh_common_args": f"-F {fleet}/ssh_config"},
                ],
                "keyed_groups": [{"key": "volt_container.status", "prefix": "volt"}],
            }
        )
    )
    try:
        listed = run(["ansible-inventory", "-i", str(config), "--list"])
        assert listed.returncode == 0, listed.stderr
        inventory = plain(json.loads(listed.stdout))
        assert sorted(inventory["volt_containers"]["hosts"]) == ["inv1@plain1", "inv2@plain1", "invl@local"]
        assert sorted(inventory["volt_running"]["hosts"]) == ["inv1@plain1", "invl@local"]
        assert inventory["volt_created"]["hosts"] == ["inv2@plain1"]
        remote = inventory["_meta"]["hostvars"]["inv1@plain1"]
        assert remote["ansible_host"] == "inv1" and remote["ansible_volt_container_host"] == "plain1"
        assert remote["ansible_connection"] == "armoredgate.volt.volt"
        assert remote["volt_container"]["backend"] == "proot" and remote["volt_container"]["status"] == "running"

        reached = run(["ansible", "-i", str(config), "volt_running", "-m", "raw", "-a", "echo hi from $CONTAINER_NAME"])
        assert reached.returncode == 0, reached.stdout + reached.stderr
        assert "hi from inv1" in reached.stdout and "hi from invl" in reached.stdout
    finally:
        ansible(here, container, name="invl", backend="proot", data_dir=local_data, state="absent")
        for name in ("inv1", "inv2"):
            ansible(plain1, container, name=name, state="absent")
