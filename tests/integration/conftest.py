"""Runs the collection's real modules (main() -> _module_runs.py -> the managers) through
pytest-ansible, on real hosts.

pytest-ansible has no check/diff switch: the small shim below adds the official task keywords
`check_mode` and `diff` to the play it builds, so `volt(check=True, diff=True)` reaches the module
as module.check_mode and module._diff.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.plugins.loader import init_plugin_loader
from pytest_ansible.module_dispatcher.v213 import ModuleDispatcherV213

from .targets import FleetProot, FleetSystemd, LocalProot

COLLECTIONS = os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0]
init_plugin_loader([COLLECTIONS])  # before the first module call, or FQCNs are not found
os.environ.setdefault("ANSIBLE_DEPRECATION_WARNINGS", "false")

_build_play_ds = ModuleDispatcherV213._build_play_ds


def _build_play_ds_with_check_and_diff(self, complex_args):
    play = _build_play_ds(self, complex_args)
    for option, keyword in (("check", "check_mode"), ("diff", "diff")):
        if self.options.get(option) is not None:
            play["tasks"][0][keyword] = bool(self.options[option])
    return play


ModuleDispatcherV213._build_play_ds = _build_play_ds_with_check_and_diff


CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROOT_BINARIES = {
    # Debian 12's package: no --kill-on-exit, no port mapping, -k breaks ls.
    "proot-5.1.0": "/usr/bin/proot",
    # Built from Debian sid's source package by tests/setup/build-proot.sh.
    "proot-5.4.0": os.environ.get("VOLT_PROOT_54", os.path.join(CACHE, "armoredgate-volt/proot-5.4/bin/proot")),
}
# proot on this machine with each binary, proot over SSH on the fleet's host without systemd,
# and systemd-nspawn on a fleet host with systemd.
TARGETS = (*sorted(PROOT_BINARIES), "proot@plain1", "systemd")
# Where the fleet's containers live: the module's default data dir, as users have it.
FLEET_DATA_DIR = "/var/lib/volt"
# Debian's 5.1.0 does not translate the paths of statx, so the modules refuse it unless the user
# opts in, as a user of that binary would (tests/integration/proot/test_proot_translation.py
# checks the refusal itself).
# plain1 runs the proot of its Debian image, 5.1.0 too (named: once the proot role ran there, a
# proot 5.4 it built comes first on PATH).
UNSAFE_PROOT = {
    "proot-5.1.0": {"allow_unsafe_proot": True},
    "proot@plain1": {"allow_unsafe_proot": True, "proot_path": "/usr/bin/proot"},
}


def proot_path(ident: str) -> str:
    path = PROOT_BINARIES[ident]
    if not os.access(path, os.X_OK):
        pytest.fail(f"{ident} is missing at {path}: run scripts/test (it installs and builds both)")
    return path


@pytest.fixture(scope="session")
def fleet():
    """The test fleet's state dir: the one scripts/test booted (VOLT_FLEET_DIR), else one booted
    (and destroyed) here with tests/fleet/fleet."""
    given = os.environ.get("VOLT_FLEET_DIR")
    if given and os.path.exists(os.path.join(given, "inventory.yml")):
        yield given
        return
    state_dir = given or "/var/tmp/volt-fleet-pytest"
    script = os.path.join(TOP, "tests", "fleet", "fleet")
    subprocess.run([script, "create", "--dir", state_dir], check=True, stdout=subprocess.DEVNULL)
    try:
        yield state_dir
    finally:
        subprocess.run([script, "destroy", "--dir", state_dir], check=False, stdout=subprocess.DEVNULL)


# Targets on the fleet: (class, host).
FLEET_TARGETS = {"proot@plain1": (FleetProot, "plain1"), "systemd": (FleetSystemd, "sys1")}


def _make_target(ident, request, ansible_adhoc, tmp_path):
    if ident in FLEET_TARGETS:
        kind, host = FLEET_TARGETS[ident]
        state_dir = request.getfixturevalue("fleet")
        return kind(
            ident,
            ansible_adhoc,
            host,
            os.path.join(state_dir, "inventory.yml"),
            data_dir=FLEET_DATA_DIR,
            ssh_config=os.path.join(state_dir, "ssh_config"),
            extra=UNSAFE_PROOT.get(ident),
        )
    return LocalProot(
        ident,
        ansible_adhoc,
        "localhost",
        "localhost,",
        data_dir=str(tmp_path / "volt"),
        extra={"proot_path": proot_path(ident), **UNSAFE_PROOT.get(ident, {})},
    )


def prepared_target(request, ansible_adhoc, tmp_path):
    """The target named by request.param, emptied and given the busybox image; emptied after."""
    chosen = _make_target(request.param, request, ansible_adhoc, tmp_path)
    chosen.cleanup()
    chosen.prepare()
    yield chosen
    chosen.cleanup()


@pytest.fixture(params=TARGETS)
def target(request, ansible_adhoc, tmp_path):
    """Every backend in turn: the same scenario holds each to the same contract."""
    yield from prepared_target(request, ansible_adhoc, tmp_path)


@pytest.fixture
def converge(target):
    """The sequence every scenario must pass: check predicts a change and writes nothing, apply
    changes as predicted, then check and apply again report no change. Returns the apply's result."""

    def run(**args):
        before = target.snapshot()
        predicted = target.volt(check=True, diff=True, **args)
        assert not predicted.get("failed"), predicted.get("msg")
        assert predicted["changed"] is True, predicted
        assert target.snapshot() == before, "check mode wrote something"
        applied = target.volt(diff=True, **args)
        assert not applied.get("failed"), applied.get("msg")
        assert applied["changed"] is True
        assert applied["actions"] == predicted["actions"]
        assert applied["diff"]["after"]["state"] == predicted["diff"]["after"]["state"]
        if args.get("state") != "restarted":
            again = target.volt(check=True, **args)
            assert again["changed"] is False, again
            before = target.snapshot()
            assert target.volt(**args)["changed"] is False
            assert target.snapshot() == before, "a run with nothing to change wrote something"
        return applied

    return run


@pytest.fixture
def localhost(ansible_adhoc):
    """Returns run(module, check=False, diff=False, **args) -> the module's result dict."""

    def run(module, check=False, diff=False, **args):
        manager = ansible_adhoc(inventory="localhost,", check=check, diff=diff)
        host = manager.options["inventory_manager"].get_host("localhost")
        # Connection settings go in host vars: pytest-ansible freezes its CLI options on first use.
        host.set_variable("ansible_connection", "local")
        host.set_variable("ansible_python_interpreter", sys.executable)
        result = getattr(manager["localhost"], module)(**args)
        return dict(result["localhost"])

    return run


def tree_snapshot(root) -> str:
    """Every path under root with its type, size and mtime: proof that nothing was written."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            entries.append((path, info.st_mode, info.st_size, info.st_mtime_ns))
    return json.dumps(sorted(entries))
