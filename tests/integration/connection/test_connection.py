"""The armoredgate.volt.volt connection plugin, in the shape of community.general's
connection_posix targets (connection_posix.yml), against a Debian container:
on this machine (proot), and on fleet hosts over SSH (proot as root on plain1, proot as the
non-root app user on termux1, systemd-nspawn on sys1); each with pipelining on and off.
Files are also checked on the container's host, byte for byte."""

from __future__ import annotations

import glob
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from ..conftest import PROOT_BINARIES, TOP

HERE = os.path.dirname(os.path.abspath(__file__))
CONTAINER = "conn"
TERMUX_HOME = "/data/data/com.termux/files/home"
TERMUX_PYTHON = "/data/data/com.termux/files/usr/bin/python3"
# The proot options of each topology's modules, as its user would have them: a proot that
# translates paths on this machine (the one the tests build); Debian's own 5.1.0 on plain1,
# accepted (the proot role replaces it; the molecule proot scenario tests that).
PROOT_OPTIONS = {
    "local-proot": {"proot_path": PROOT_BINARIES["proot-5.4.0"]},
    "plain1-proot": {"proot_path": "/usr/bin/proot", "allow_unsafe_proot": "true"},
}
# topology -> (fleet host or None, backend, data dir on that host)
TOPOLOGIES = {
    "local-proot": (None, "proot", None),
    "plain1-proot": ("plain1", "proot", "/var/lib/volt"),
    "termux1-proot": ("termux1", "proot", TERMUX_HOME + "/.local/share/volt"),
    "sys1-systemd": ("sys1", "systemd", "/var/lib/volt"),
}


def debian_tree() -> str:
    """A Debian bookworm tree with Python: the fleet's plain image (tests/fleet/fleet builds it)."""
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "armoredgate-volt")
    candidates = glob.glob(os.path.join(cache, "fleet", "bookworm-*", "plain"))
    trees = [tree for tree in candidates if os.path.exists(tree + "/usr/bin/python3")]
    if not trees:
        pytest.fail("no fleet image: the fleet fixture builds it")
    return max(trees, key=os.path.getmtime)


def run(argv, **kwargs):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), **kwargs.pop("env", {}))
    program = os.path.join(os.path.dirname(sys.executable), argv[0])
    return subprocess.run([program, *argv[1:]], capture_output=True, text=True, env=env, check=False, **kwargs)


class Topology:
    """One topology's container (named container, made from image), and the container as an
    inventory host."""

    container = CONTAINER
    image = "debian"

    def __init__(self, ident, fleet, tmp_path):
        self.ident = ident
        self.host, self.backend, data_dir = TOPOLOGIES[ident]
        self.fleet = fleet
        self.data_dir = data_dir or str(tmp_path / "volt")
        self.tmp_path = tmp_path

    # -- the container's host ------------------------------------------------------------------
    def host_path(self, path: str) -> str:
        """Where a path of the container's host is, seen from this machine."""
        return os.path.join(self.fleet, "hosts", self.host, "root") + path if self.host else path

    def host_module(self, module: str, **args) -> dict:
        inventory = os.path.join(self.fleet, "inventory.yml") if self.host else "localhost,"
        target = self.host or "localhost"
        extra = [] if self.host else ["-c", "local", "-e", f"ansible_python_interpreter={sys.executable}"]
        args = {**PROOT_OPTIONS.get(self.ident, {}), **args}
        text = " ".join(f"{key}={shlex.quote(str(value))}" for key, value in args.items())
        result = run(["ansible", "-i", inventory, target, *extra, "-m", f"armoredgate.volt.{module}", "-a", text])
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def customize_image(self, tree: str) -> None:
        """Change the image's tree (seen from this machine) before it goes into the store."""

    def prepare(self):
        image = self.host_path(os.path.join(self.data_dir, "images", self.image))
        if not os.path.isdir(image):
            os.makedirs(os.path.dirname(image), exist_ok=True)
            subprocess.run(["rm", "-rf", image + ".tmp"], check=True)
            subprocess.run(["cp", "-a", "--reflink=auto", debian_tree(), image + ".tmp"], check=True)
            self.customize_image(image + ".tmp")
            if self.host == "termux1":  # the app user owns its data dir
                subprocess.run(["chown", "-R", "10100:10100", self.host_path(TERMUX_HOME + "/.local")], check=True)
            os.rename(image + ".tmp", image)
        if self.host == "termux1":
            ssh = ["ssh", "-F", os.path.join(self.fleet, "ssh_config"), "termux1"]
            install = "command -v proot >/dev/null || pkg install -y proot"
            subprocess.run([*ssh, install], check=True, capture_output=True)
        self.host_module(
            "volt_container",
            name=self.container,
            image=self.image,
            command="sleep 1000000",
            backend=self.backend,
            data_dir=self.data_dir,
        )

    def cleanup(self):
        self.host_module(
            "volt_container", name=self.container, state="absent", backend=self.backend, data_dir=self.data_dir
        )

    def rootfs_path(self, path: str) -> str:
        rootfs = os.path.join(self.data_dir, "containers", self.container)
        if self.backend == "proot":
            rootfs = os.path.join(rootfs, "rootfs")
        return self.host_path(rootfs + path)

    # -- the container as an inventory host ----------------------------------------------------
    def inventory(self, **host_vars) -> str:
        host = {
            "ansible_connection": "armoredgate.volt.volt",
            "ansible_host": self.container,
            "ansible_volt_backend": self.backend,
            "ansible_volt_data_dir": self.data_dir,
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        if "proot_path" in PROOT_OPTIONS.get(self.ident, {}):
            host["ansible_volt_proot_path"] = PROOT_OPTIONS[self.ident]["proot_path"]
        variables = {}
        if self.host:
            host["ansible_volt_container_host"] = self.host
            variables = {
                "ansible_ssh_common_args": f"-F {self.fleet}/ssh_config",
                "ansible_control_path_dir": f"{self.fleet}/cp",
            }
            if self.host == "termux1":
                host["ansible_volt_host_python"] = TERMUX_PYTHON
        host.update(host_vars)
        path = self.tmp_path / "inventory.yml"
        hosts = {f"{self.container}-{self.ident}": host}
        path.write_text(yaml.safe_dump({"all": {"vars": variables, "hosts": hosts}}, allow_unicode=True))
        return str(path)


@pytest.fixture(params=sorted(TOPOLOGIES))
def topology(request, fleet, tmp_path):
    chosen = Topology(request.param, fleet, tmp_path)
    chosen.prepare()
    yield chosen
    chosen.cleanup()


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_connection_posix_shape(topology, pipelining, tmp_path):
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    result = run(
        [
            "ansible-playbook",
            "-i",
            topology.inventory(),
            os.path.join(HERE, "connection_posix.yml"),
            "-e",
            f"target_hosts=all local_dir={local_dir}",
        ],
        env={"ANSIBLE_PIPELINING": str(pipelining)},
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    # What the tasks wrote is really in the container's root filesystem, byte for byte.
    remote_dir = "/root/volt-connection-汉语"
    with open(local_dir / "binary.bin", "rb") as handle:
        binary = handle.read()
    with open(topology.rootfs_path(f"{remote_dir}/binary.bin"), "rb") as handle:
        assert handle.read() == binary
    with open(topology.rootfs_path(f"{remote_dir}/汉语.txt"), encoding="utf-8") as handle:
        assert handle.read() == "汉语\n"
    assert (local_dir / "fetched" / "binary.bin").read_bytes() == binary
    assert (local_dir / "fetched" / "汉语.txt").read_text(encoding="utf-8") == "汉语\n"
    rendered = topology.rootfs_path(f"{remote_dir}/rendered.conf")
    assert f"container={CONTAINER}-{topology.ident}" in open(rendered, encoding="utf-8").read()


def test_a_stopped_container_is_a_clear_connection_failure(fleet, tmp_path):
    chosen = Topology("plain1-proot", fleet, tmp_path)
    chosen.prepare()
    try:
        chosen.host_module(
            "volt_container", name=CONTAINER, state="stopped", backend="proot", data_dir=chosen.data_dir, stop_timeout=2
        )
        result = run(["ansible", "-i", chosen.inventory(), "all", "-m", "ansible.builtin.raw", "-a", "true"])
        assert result.returncode != 0
        assert "UNREACHABLE" in result.stdout and f"container {CONTAINER} is not running" in result.stdout
    finally:
        chosen.cleanup()
