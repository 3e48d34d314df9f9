"""The collection as Galaxy users get it: the tarball `ansible-galaxy collection build` makes,
installed with `ansible-galaxy collection install TARBALL -p PATH` into a fresh path, and used
from there, never from the checkout: ansible-doc of every plugin and role, the demo's site.yml
(converge, then nothing to change), and the connection plugin to a container on a fleet host
over SSH (it copies collection code to the host: the artifact must carry all of it)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request

import pytest
import yaml

from .conftest import PROOT_BINARIES, TOP
from .connection.test_connection import HERE as CONNECTION_TESTS
from .connection.test_connection import PROOT_OPTIONS, Topology

GALAXY = yaml.safe_load(open(os.path.join(TOP, "galaxy.yml"), encoding="utf-8"))
TARBALL_NAME = f"{GALAXY['namespace']}-{GALAXY['name']}-{GALAXY['version']}.tar.gz"
# What the artifact must never carry (build_ignore in galaxy.yml), and what it must carry.
KEPT_OUT = (
    "tests/",
    "bench/",
    "scripts/",
    "build/",
    "extensions/",
    "requirements/",
    "ee/",
    ".venv/",
    ".ci/",
    "collections/",
)
KEPT_OUT_NAMES = ("__pycache__", ".pyc", ".pytest_cache", ".ruff_cache", ".git/", "ansible.cfg")
REQUIRED = (
    "MANIFEST.json",
    "FILES.json",
    "README.md",
    "meta/runtime.yml",
    "playbooks/site.yml",
    "playbooks/inventory/demo.yml",
    "roles/proot/files/build-proot.sh",
    "roles/proot/meta/argument_specs.yml",
    "plugins/connection/volt.py",
    "plugins/inventory/volt_containers.py",
    "plugins/plugin_utils/_container_hosts.py",
    # What an execution environment's build reads from the installed collection.
    "meta/execution-environment.yml",
    "requirements.txt",
    "bindep.txt",
)
DEMO_PORT = 8080  # playbooks/inventory/demo.yml publishes it


def run(argv, env, cwd, check=True):
    program = os.path.join(os.path.dirname(sys.executable), argv[0])
    result = subprocess.run([program, *argv[1:]], capture_output=True, text=True, env=env, cwd=cwd, check=False)
    if check:
        assert result.returncode == 0, f"{argv}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("artifact")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    run(["ansible-galaxy", "collection", "build", TOP, "--output-path", str(out)], env, cwd=str(out))
    path = out / TARBALL_NAME
    assert path.is_file(), sorted(os.listdir(out))
    return path


class Installation:
    """The tarball installed into a fresh collections path, and the environment that sees only
    that path: no ansible.cfg of the checkout, no collections from sys.path."""

    def __init__(self, root, tarball):
        self.root = root
        self.collection = root / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
        config = root / "ansible.cfg"
        config.write_text(
            "[defaults]\n"
            f"collections_path = {root}\n"
            "collections_scan_sys_path = false\n"
            "interpreter_python = auto_silent\n"
            "callback_result_format = yaml\n"
        )
        self.cwd = str(root)
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        self.env.update(ANSIBLE_CONFIG=str(config), ANSIBLE_DEPRECATION_WARNINGS="false")
        run(["ansible-galaxy", "collection", "install", str(tarball), "-p", str(root)], self.env, self.cwd)

    def run(self, *argv, check=True, **extra_env):
        return run(list(argv), dict(self.env, **extra_env), self.cwd, check=check)

    def local_module(self, module: str, args: str, check=True):
        """An ad hoc task of the collection's module on this machine."""
        python = f"ansible_python_interpreter={sys.executable}"
        return self.run(
            "ansible",
            "localhost",
            "-c",
            "local",
            "-e",
            python,
            "-m",
            f"armoredgate.volt.{module}",
            "-a",
            args,
            check=check,
        )


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    return Installation(tmp_path_factory.mktemp("installed"), tarball)


def test_the_tarball_carries_the_collection_and_nothing_else(tarball):
    with tarfile.open(tarball) as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    files = [member for member in members if member.isfile()]
    print(f"{tarball.name}: {tarball.stat().st_size} bytes, {len(files)} files ({len(names)} members)")
    assert [name for name in REQUIRED if name not in names] == []
    stray = [name for name in names if name.startswith(KEPT_OUT) or any(part in name for part in KEPT_OUT_NAMES)]
    assert stray == []
    # Every file under plugins/ and roles/ in git is in the artifact (nothing lost to build_ignore).
    tracked = subprocess.run(
        ["git", "-C", TOP, "ls-files", "plugins", "roles", "playbooks", "meta"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert [path for path in tracked if path not in names] == []
    assert not [member.name for member in members if member.issym() or member.islnk()]
    manifest = json.loads(tarfile.open(tarball).extractfile("MANIFEST.json").read())
    assert manifest["collection_info"]["version"] == GALAXY["version"]


def test_the_installation_verifies_and_is_the_only_one_found(installed):
    result = installed.run("ansible-galaxy", "collection", "verify", "--offline", "armoredgate.volt")
    assert "Successfully verified that checksums for 'armoredgate.volt" in result.stdout, result.stdout
    listed = installed.run("ansible-galaxy", "collection", "list", "armoredgate.volt", "--format", "json")
    assert list(json.loads(listed.stdout)) == [str(installed.root / "ansible_collections")]


def plugins_of(installed) -> list[tuple[str, str]]:
    """(type, FQCN) of every plugin and role the installation holds."""
    found = []
    for kind, folder in (("module", "modules"), ("connection", "connection"), ("inventory", "inventory")):
        for name in sorted(os.listdir(installed.collection / "plugins" / folder)):
            if name.endswith(".py") and not name.startswith("_"):
                found.append((kind, f"armoredgate.volt.{name[:-3]}"))
    for role in sorted(os.listdir(installed.collection / "roles")):
        if (installed.collection / "roles" / role / "meta" / "argument_specs.yml").is_file():
            found.append(("role", f"armoredgate.volt.{role}"))
    return found


def test_ansible_doc_documents_every_plugin_and_role_from_the_installation(installed):
    plugins = plugins_of(installed)
    assert ("module", "armoredgate.volt.volt_container") in plugins and ("role", "armoredgate.volt.proot") in plugins
    for kind, name in plugins:
        result = installed.run("ansible-doc", "-t", kind, "--json", name)
        doc = json.loads(result.stdout)[name]
        if kind == "role":
            assert doc["entry_points"]["main"]["short_description"], name
            assert doc["path"].startswith(str(installed.collection)), doc["path"]
        else:
            assert doc["doc"]["short_description"], name
            assert doc["doc"]["filename"].startswith(str(installed.collection)), doc["doc"]["filename"]
        assert "WARNING" not in result.stderr, f"{name}: {result.stderr}"
    listed = installed.run("ansible-doc", "-t", "module", "-l", "armoredgate.volt", "--json")
    assert sorted(json.loads(listed.stdout)) == sorted(name for kind, name in plugins if kind == "module")


def busybox_rootfs(path) -> str:
    """The demo's image source, as scripts/demo builds it: static busybox and its applets."""
    for folder in ("bin", "etc", "root", "tmp", "proc", "dev", "sys", "srv/www"):
        (path / folder).mkdir(parents=True)
    shutil.copy2("/bin/busybox", path / "bin" / "busybox")
    applets = subprocess.run([path / "bin" / "busybox", "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            (path / "bin" / applet).symlink_to("busybox")
    (path / "srv" / "www" / "index.html").write_text("<h1>Hello from a Volt container</h1>\n")
    return str(path)


def recap(output: str) -> dict:
    line = next(line for line in output.splitlines() if line.startswith("localhost ") and "ok=" in line)
    return {key: int(value) for key, value in (field.split("=") for field in line.split()[2:])}


def page(url: str) -> str | None:
    for _attempt in range(20):
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.5)
    return None


def test_the_demo_converges_from_the_installation(installed, tmp_path):
    inventory = installed.collection / "playbooks" / "inventory" / "demo.yml"
    data_dir = tmp_path / "volt"
    extra = [
        "-e",
        f"volt_data_dir={data_dir}",
        "-e",
        f"volt_demo_rootfs={busybox_rootfs(tmp_path / 'busybox-rootfs')}",
        # The proot the tests built (the role checks it): the role must not install one on
        # this machine for the other tests.
        "-e",
        f"volt_proot_path={PROOT_BINARIES['proot-5.4.0']}",
    ]
    playbook = ["ansible-playbook", "-i", str(inventory), *extra, "armoredgate.volt.site"]
    try:
        first = installed.run(*playbook)
        assert recap(first.stdout)["changed"] > 0 and recap(first.stdout)["failed"] == 0
        assert page(f"http://127.0.0.1:{DEMO_PORT}/") == "<h1>Hello from a Volt container</h1>\n"
        # Again, with the host's kind given by the inventory (no facts read): nothing to change.
        again = installed.run(*playbook, "-e", "volt_host_kind=proot")
        assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
        info = installed.local_module("volt_container_info", f"name=demo-web data_dir={data_dir}")
        assert "status: running" in info.stdout, info.stdout
    finally:
        proot = PROOT_BINARIES["proot-5.4.0"]
        installed.local_module(
            "volt_container", f"name=demo-web state=absent data_dir={data_dir} proot_path={proot}", check=False
        )
    assert not os.path.exists(data_dir / "containers" / "demo-web")


class InstalledTopology(Topology):
    """test_connection's topology, with every ansible command run from the installation."""

    installation: Installation

    def host_module(self, module: str, **args) -> dict:
        args = {**PROOT_OPTIONS.get(self.ident, {}), **args}
        text = " ".join(f"{key}={shlex.quote(str(value))}" for key, value in args.items())
        inventory = os.path.join(self.fleet, "inventory.yml")
        return self.installation.run(
            "ansible", "-i", inventory, self.host, "-m", f"armoredgate.volt.{module}", "-a", text
        )


def test_the_connection_plugin_reaches_a_fleet_container_from_the_installation(installed, fleet, tmp_path):
    topology = InstalledTopology("plain1-proot", fleet, tmp_path)
    topology.installation = installed
    topology.prepare()
    try:
        local_dir = tmp_path / "local"
        local_dir.mkdir()
        installed.run(
            "ansible-playbook",
            "-i",
            topology.inventory(),
            os.path.join(CONNECTION_TESTS, "connection_posix.yml"),
            "-e",
            f"target_hosts=all local_dir={local_dir}",
        )
        with open(topology.rootfs_path("/root/volt-connection-汉语/binary.bin"), "rb") as handle:
            assert handle.read() == (local_dir / "binary.bin").read_bytes()
    finally:
        topology.cleanup()
