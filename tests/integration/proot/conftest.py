"""Fixtures for the proot backend: two real proot binaries and a busybox root filesystem."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from ..conftest import tree_snapshot

CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
PROOT_BINARIES = {
    # Debian 12's package: no --kill-on-exit, no port mapping, -k breaks ls.
    "proot-5.1.0": "/usr/bin/proot",
    # Built from Debian sid's source package by tests/setup/build-proot.sh.
    "proot-5.4.0": os.environ.get("VOLT_PROOT_54", os.path.join(CACHE, "armoredgate-volt/proot-5.4/bin/proot")),
}


@pytest.fixture(scope="session", params=sorted(PROOT_BINARIES))
def proot(request):
    path = PROOT_BINARIES[request.param]
    if not os.access(path, os.X_OK):
        pytest.fail(f"{request.param} is missing at {path}: run scripts/test (it installs and builds both)")
    return path


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A tiny real root filesystem: Debian's static busybox with its applets as symlinks."""
    root = tmp_path_factory.mktemp("busybox-rootfs")
    for directory in ("bin", "etc", "root", "tmp", "proc", "dev", "sys", "srv"):
        (root / directory).mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run([str(root / "bin" / "busybox"), "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "os-release").write_text('NAME="Volt test"\nPRETTY_NAME="Volt test (busybox)"\n')
    return str(root)


@pytest.fixture
def data_dir(tmp_path):
    path = tmp_path / "volt"
    yield str(path)
    # Leave no container process behind, whatever the test did. Killing proot alone would leave
    # its guests running, so kill each container's whole session, then any proot on its rootfs.
    for state_file in path.glob("containers/*/state.json"):
        try:
            session = json.loads(state_file.read_text()).get("session")
        except ValueError:
            session = None
        if session:
            subprocess.run(["pkill", "-KILL", "-s", str(session)], check=False)
        subprocess.run(["pkill", "-KILL", "-f", str(state_file.parent / "rootfs")], check=False)


@pytest.fixture
def volt(localhost, proot, data_dir):
    """volt(module='volt_container', check=False, diff=False, **args): runs the module by FQCN."""

    def run(module="volt_container", check=False, diff=False, **args):
        args.setdefault("data_dir", data_dir)
        args.setdefault("proot_path", proot)
        return localhost(f"armoredgate.volt.{module}", check=check, diff=diff, **args)

    return run


@pytest.fixture
def converge(volt, data_dir):
    """The sequence every scenario must pass: check predicts a change and writes nothing, apply
    changes, then check and apply again report no change. Returns the first apply's result."""

    def run(**args):
        before = tree_snapshot(data_dir)
        predicted = volt(check=True, diff=True, **args)
        assert not predicted.get("failed"), predicted.get("msg")
        assert predicted["changed"] is True, predicted
        assert tree_snapshot(data_dir) == before, "check mode wrote to the data dir"
        applied = volt(diff=True, **args)
        assert not applied.get("failed"), applied.get("msg")
        assert applied["changed"] is True
        assert applied["actions"] == predicted["actions"]
        assert applied["diff"]["after"]["state"] == predicted["diff"]["after"]["state"]
        if args.get("state") != "restarted":
            again = volt(check=True, **args)
            assert again["changed"] is False, again
            assert volt(**args)["changed"] is False
        return applied

    return run
