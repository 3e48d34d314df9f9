"""The proot role on a Debian host without systemd (plain1, root) brings a proot it built
earlier up to date when build-proot.sh changed since (a newer release of the collection, with a
new local fix), checked before in check mode; while the build is current it needs no build tools;
and it leaves a proot it did not build alone."""

from __future__ import annotations

import hashlib
import os

import yaml

from ..conftest import TOP
from .test_site_fleet import ansible, inventory, recap

HOST = "plain1"
TARGET = "/usr/local/bin/proot"
CACHE = "/var/cache/armoredgate-volt/proot-5.4"
PLAY = [{"name": "The proot role", "hosts": HOST, "gather_facts": False, "roles": ["armoredgate.volt.proot"]}]


def run_role(fleet, tmp_path, *extra) -> int:
    """Tasks changed on the host."""
    play = tmp_path / "proot-role.yml"
    play.write_text(yaml.safe_dump(PLAY))
    return recap(ansible("ansible-playbook", "-i", inventory(fleet), *extra, str(play)))[HOST]


def sh(fleet, script: str) -> str:
    result = ansible("ansible", "-i", inventory(fleet), HOST, "-m", "ansible.builtin.shell", "-a", script)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.split("\n", 1)[1].strip()


def state(fleet) -> dict[str, str]:
    """The target's sha256, the recipe the cache records and when BUILDINFO was written."""
    out = sh(fleet, f"sha256sum {TARGET} | cut -d' ' -f1; cat {CACHE}/RECIPE; stat -c %y {CACHE}/BUILDINFO")
    target, recipe, built = out.split("\n")
    return {"target": target, "recipe": recipe, "built": built}


def test_a_proot_built_earlier_is_brought_up_to_date_and_a_foreign_one_left_alone(fleet, tmp_path):
    with open(os.path.join(TOP, "roles", "proot", "files", "build-proot.sh"), "rb") as handle:
        current_recipe = hashlib.sha256(handle.read()).hexdigest()
    run_role(fleet, tmp_path)  # built here (or already, by an earlier test)
    assert run_role(fleet, tmp_path) == 0
    current = state(fleet)
    assert current["recipe"] == current_recipe
    # Build tools removed after the build stay removed while the build is current.
    sh(fleet, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q patch dpkg-dev")
    assert run_role(fleet, tmp_path) == 0
    assert "not-installed" in sh(fleet, "dpkg-query -W -f='${db:Status-Status}' patch 2>&1 || true")

    # What an earlier release's build leaves: another binary, in the cache and at the target, and
    # a recipe that is not this build-proot.sh's (a byte appended to the ELF file: it still runs).
    sh(fleet, f"printf x >> {CACHE}/bin/proot && cp {CACHE}/bin/proot {TARGET} && echo earlier > {CACHE}/RECIPE")
    earlier = state(fleet)
    assert run_role(fleet, tmp_path, "--check") > 0, "check mode predicts the rebuild"
    assert state(fleet) == earlier, "check mode changed nothing"

    assert run_role(fleet, tmp_path) > 0
    rebuilt = state(fleet)
    assert rebuilt["recipe"] == current_recipe and rebuilt["built"] != earlier["built"], (earlier, rebuilt)
    assert rebuilt["target"] != earlier["target"]
    sh(fleet, f"cmp {TARGET} {CACHE}/bin/proot && {TARGET} --version >/dev/null")
    sh(fleet, "dpkg-query -W -f='${db:Status-Status}' patch dpkg-dev | grep -qx installedinstalled")
    assert run_role(fleet, tmp_path, "--check") == 0
    assert run_role(fleet, tmp_path) == 0

    # Someone else's proot at the same path (it still runs: a byte appended to the ELF file).
    sh(fleet, f"cp {TARGET} /root/proot.saved && printf x >> {TARGET} && echo earlier > {CACHE}/RECIPE")
    try:
        foreign = state(fleet)
        assert run_role(fleet, tmp_path) == 0
        assert state(fleet) == foreign, "a proot the role did not build was replaced"
    finally:
        sh(fleet, f"mv /root/proot.saved {TARGET} && echo {current_recipe} > {CACHE}/RECIPE")
    assert run_role(fleet, tmp_path) == 0
