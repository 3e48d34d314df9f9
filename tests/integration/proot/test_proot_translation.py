"""Debian's proot 5.1.0 does not translate the paths of statx: a glibc guest's stat and ls see the
host's file at the same path. volt_proot_info detects it, and the modules refuse to run such a
proot (changing nothing) unless the user accepts it (allow_unsafe_proot); 5.4.0 is correct and
runs quietly."""

from __future__ import annotations

import json
import os
import re
import stat

from ..conftest import PROOT_BINARIES
from ..test_roles import proot_role

SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]


def processes_of(target, name: str) -> list[str]:
    """Command lines on this machine that name the container's directory (its proot does)."""
    where = os.path.join(target.data_dir, "containers", name)
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                line = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if where in line:
            found.append(line)
    return found


def without_verdict(target, snapshot: str) -> list[str]:
    """A snapshot's lines but those of the data dir itself and the probe's cache."""
    skipped = (target.data_dir + " ", os.path.join(target.data_dir, "proot-probe.json"))
    return [line for line in snapshot.splitlines() if not line.startswith(skipped)]


def defective(target) -> bool:
    return target.id == "proot-5.1.0"


def test_proot_info_compares_a_guest_only_and_a_host_only_path(target, proot):
    facts = target.volt("volt_proot_info", proot_path=proot)["proot"]
    assert facts["works"] is True and facts["path_translation_tools"] == ["stat", "ls"]
    problem = facts["path_translation_problem"]
    if defective(target):
        assert facts["path_translation_safe"] is False
        # Both tools miss the file of the guest's root and see the host's file instead.
        for tool in ("stat", "ls"):
            assert f"{tool} does not see /volt-guest-only-" in problem, problem
            assert f"{tool} sees /" in problem and "which exists only on the host" in problem, problem
        assert "proot >= 5.2" in problem
        assert facts["kernel_release_safe"] is False
    else:
        assert facts["path_translation_safe"] is True and problem == ""
        assert facts["kernel_release_safe"] is True


def refused(target, proot, result) -> str:
    """The refusal of an unsafe proot in result, with its advice."""
    assert result.get("failed"), result
    msg = result["msg"]
    assert "does not translate paths correctly, so it was not used" in msg, msg
    for advice in (proot, "proot >= 5.2", "proot_binary_src", "proot_binary_url", "allow_unsafe_proot", "role"):
        assert advice in msg, msg
    return msg


def quiet(result) -> None:
    assert not result.get("failed"), result.get("msg")
    assert not [w for w in result.get("warnings", []) if "translate paths" in w], result.get("warnings")


def test_a_proot_that_does_not_translate_paths_is_refused_unless_accepted(target, proot, busybox_rootfs):
    args = {"name": "strict", "rootfs": busybox_rootfs, "command": SLEEPER, "allow_unsafe_proot": False}
    cache = os.path.join(target.data_dir, "proot-probe.json")
    before = target.snapshot()
    predicted = target.volt(check=True, **args)
    assert target.snapshot() == before and not os.path.exists(cache), "check mode wrote the probe's cache"
    if defective(target):
        # Check mode predicts the refusal; the real run refuses before anything touches the disk.
        refused(target, proot, predicted)
        refused(target, proot, target.volt(**args))
        # The only write: the verdict, in the (now private) data dir.
        assert without_verdict(target, target.snapshot()) == without_verdict(target, before), (
            "a refused start left something"
        )
        assert not os.path.exists(os.path.join(target.data_dir, "containers", "strict"))
        assert not processes_of(target, "strict")
    else:
        assert predicted["changed"] is True
        quiet(predicted)
        started = target.volt(**args)
        quiet(started)
        assert started["container"]["status"] == "running", started.get("msg")
    # The verdict is kept per binary, privately, so later runs do not pay for the probe.
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    entry = json.load(open(cache))["binaries"][proot]
    assert entry["path_translation_safe"] is not defective(target) and entry["size"] == os.stat(proot).st_size
    accepted = target.volt(**dict(args, name="accepted", allow_unsafe_proot=True))
    quiet(accepted)
    assert accepted["container"]["status"] == "running"
    assert processes_of(target, "accepted")


def test_the_cached_verdict_is_used_for_the_same_binary(target, proot, busybox_rootfs):
    """A verdict in the cache for this very binary (same mtime and size) is trusted: no new probe."""
    info = os.stat(proot)
    os.makedirs(target.data_dir, exist_ok=True)
    cache = os.path.join(target.data_dir, "proot-probe.json")
    entry = {
        "mtime_ns": info.st_mtime_ns,
        "size": info.st_size,
        "path_translation_safe": False,
        "path_translation_problem": "a verdict from the cache",
    }
    with open(cache, "w") as handle:
        json.dump({"format": 1, "binaries": {proot: entry}}, handle)
    args = {"name": "cached", "rootfs": busybox_rootfs, "command": SLEEPER, "allow_unsafe_proot": False}
    assert "a verdict from the cache" in refused(target, proot, target.volt(**args))
    # Another binary (or this one changed) is probed again.
    entry["size"] += 1
    with open(cache, "w") as handle:
        json.dump({"format": 1, "binaries": {proot: entry}}, handle)
    again = target.volt(**dict(args, name="again"))
    if defective(target):
        assert "a verdict from the cache" not in refused(target, proot, again)
    else:
        quiet(again)
        assert again["container"]["status"] == "running"


def test_volt_exec_refuses_a_proot_that_does_not_translate_paths(target, proot, busybox_rootfs):
    base = {"name": "entered", "rootfs": busybox_rootfs, "command": SLEEPER}
    assert target.volt(**dict(base, allow_unsafe_proot=True))["container"]["status"] == "running"
    result = target.volt("volt_exec", name="entered", argv=["touch", "/ran"], allow_unsafe_proot=False)
    rootfs = os.path.join(target.data_dir, "containers", "entered", "rootfs")
    if defective(target):
        refused(target, proot, result)
        assert not os.path.exists(os.path.join(rootfs, "ran")), "the refused command ran"
    else:
        quiet(result)
        assert os.path.exists(os.path.join(rootfs, "ran"))
    quiet(target.volt("volt_exec", name="entered", argv=["echo", "inside"], allow_unsafe_proot=True))


def test_the_proot_role_refuses_debians_proot_unless_accepted(tmp_path):
    """On Debian (this machine) the role refuses Debian's 5.1.0 named by proot_path (it replaces
    only a proot it installed itself), accepts it with proot_allow_unsafe and says so in its facts,
    and takes 5.4.0 as it is."""
    debian, good = PROOT_BINARIES["proot-5.1.0"], PROOT_BINARIES["proot-5.4.0"]
    refused = proot_role(tmp_path, proot_install="none", proot_path=debian)
    assert refused.returncode != 0, refused.stdout[-3000:]
    assert f"{debian} fails the path translation check" in refused.stdout, refused.stdout[-3000:]
    assert "proot_allow_unsafe" in refused.stdout and "proot_binary_src" in refused.stdout
    accepted = proot_role(tmp_path, proot_install="none", proot_path=debian, proot_allow_unsafe=True)
    assert accepted.returncode == 0, accepted.stdout[-3000:]
    assert re.search(r"path_translation_safe\W*false", accepted.stdout), accepted.stdout[-3000:]
    fine = proot_role(tmp_path, proot_install="none", proot_path=good)
    assert fine.returncode == 0 and re.search(r"path_translation_safe\W*true", fine.stdout), fine.stdout[-3000:]
