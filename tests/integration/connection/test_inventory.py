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


def test_inventory_cache_serves_the_listing_without_the_hosts_until_flushed(fleet, tmp_path):
    """cache: true with the jsonfile cache plugin: a second listing comes from the cache (a
    container removed since still shows), --flush-cache lists the hosts again and refreshes the
    cache; the cache directory is private and holds no secret_env value in clear."""
    plain1 = ["-i", os.path.join(fleet, "inventory.yml"), "plain1"]
    ansible(plain1, "ansible.builtin.command", argv=["sh", "-c", BUSYBOX, "sh", "/root/inv-busybox"])
    container, options = "armoredgate.volt.volt_container", PROOT_OPTIONS["plain1-proot"]
    secret = "s3cr3t-" + os.urandom(6).hex()
    made = run(
        [
            "ansible",
            *plain1,
            "-m",
            container,
            "-a",
            json.dumps(
                {
                    "name": "invc1",
                    "rootfs": "/root/inv-busybox",
                    "state": "present",
                    "env": {"PLAIN": "visible"},
                    "secret_env": {"TOKEN": secret},
                    **options,
                }
            ),
        ]
    )
    assert made.returncode == 0, made.stdout + made.stderr
    ansible(plain1, container, name="invc2", rootfs="/root/inv-busybox", state="present", **options)
    cache_dir = tmp_path / "cache" / "volt_containers"  # not there yet: the plugin's process makes it
    config = tmp_path / "cached.volt_containers.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "plugin": "armoredgate.volt.volt_containers",
                "container_hosts": [{"host": "plain1", "ssh_common_args": f"-F {fleet}/ssh_config"}],
                "cache": True,
                "cache_plugin": "ansible.builtin.jsonfile",
                "cache_connection": str(cache_dir),
                "cache_timeout": 3600,
            }
        )
    )

    def listed(*extra) -> list[str]:
        result = run(["ansible-inventory", "-i", str(config), "--list", *extra])
        assert result.returncode == 0, result.stderr
        assert "open to other users" not in result.stderr, result.stderr
        return sorted(json.loads(result.stdout).get("volt_containers", {}).get("hosts", []))

    try:
        assert listed() == ["invc1@plain1", "invc2@plain1"]
        files = list(cache_dir.iterdir())
        assert len(files) == 1, files
        text = files[0].read_text()
        assert "invc2" in text and "visible" in text  # the records, env in clear
        assert secret not in text  # secret_env only as a digest
        # jsonfile writes the file 0644: the directory the plugin made keeps it private.
        assert cache_dir.stat().st_mode & 0o777 == 0o700

        ansible(plain1, container, name="invc2", state="absent")
        assert listed() == ["invc1@plain1", "invc2@plain1"]  # from the cache: plain1 was not asked
        assert listed("--flush-cache") == ["invc1@plain1"]  # plain1 asked again
        assert listed() == ["invc1@plain1"]  # and the cache refreshed

        config.write_text(config.read_text().replace("cache: true", "cache: false"))
        ansible(plain1, container, name="invc3", rootfs="/root/inv-busybox", state="present", **options)
        assert listed() == ["invc1@plain1", "invc3@plain1"]  # cache off: always the hosts

        open_dir = tmp_path / "open-cache"
        open_dir.mkdir(mode=0o755)
        open_dir.chmod(0o755)
        config.write_text(
            config.read_text().replace("cache: false", "cache: true").replace(str(cache_dir), str(open_dir))
        )
        warned = run(["ansible-inventory", "-i", str(config), "--list"])
        assert warned.returncode == 0, warned.stderr
        assert "open to other users" in " ".join(warned.stderr.split()), warned.stderr
    finally:
        for name in ("invc1", "invc2", "invc3"):
            ansible(plain1, container, name=name, state="absent")
