"""_enter: file access through a container's root filesystem (symlinks never lead out) and the
entry command the connection plugin runs on a container's host, on real proot containers."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils import _enter
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._proot import ProotBackend
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._runner import Runner


@pytest.fixture
def rootfs(tmp_path):
    root = tmp_path / "rootfs"
    for directory in ("etc", "root", "srv/data"):
        (root / directory).mkdir(parents=True)
    (root / "etc" / "hostname").write_text("guest\n")
    os.symlink("/etc", root / "abs-etc")  # absolute: means the guest's /etc
    os.symlink("../../../../..", root / "srv" / "up")  # climbs: stops at the guest's /
    os.symlink("/nowhere/file", root / "dangling")
    return root


def test_paths_resolve_inside_the_root(rootfs):
    assert _enter.guest_file(str(rootfs), "/abs-etc/hostname", for_writing=False) == str(rootfs / "etc" / "hostname")
    assert _enter.guest_file(str(rootfs), "/srv/up/etc/hostname", for_writing=False) == str(rootfs / "etc" / "hostname")
    cases = [
        ("relative/path", True, "must be absolute"),
        ("/missing/dir/file", True, "'/missing/dir' does not exist"),
        ("/dangling", True, "symlink to nothing"),
        ("/srv/data", True, "is a directory"),
        ("/etc/nothing", False, "does not exist in the container"),
    ]
    for path, writing, message in cases:
        with pytest.raises(VoltError, match=message):
            _enter.guest_file(str(rootfs), path, for_writing=writing)


def test_write_and_read_keep_modes_and_leave_no_temporary(rootfs, tmp_path):
    _enter.write_guest_file(str(rootfs), "/abs-etc/new.bin", io.BytesIO(bytes(range(256))))
    target = rootfs / "etc" / "new.bin"
    assert target.read_bytes() == bytes(range(256)) and stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o600)
    _enter.write_guest_file(str(rootfs), "/etc/new.bin", io.BytesIO(b"again"))
    assert target.read_bytes() == b"again" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [name for name in os.listdir(rootfs / "etc") if name.startswith(".volt-put-")] == []
    assert not os.path.exists("/etc/new.bin")  # written in the root, never on the host
    sink = io.BytesIO()
    _enter.read_guest_file(str(rootfs), "/srv/up/etc/new.bin", sink)
    assert sink.getvalue() == b"again"


@pytest.fixture
def container(tmp_path):
    """A real proot container record (created, not started) in a scratch data dir."""
    if not shutil.which("proot"):
        pytest.skip("proot is not installed (scripts/bootstrap installs it)")
    source = tmp_path / "source"
    (source / "etc").mkdir(parents=True)
    data_dir = tmp_path / "volt"
    ProotBackend(Runner(), str(data_dir), {}).create("box", {"rootfs": str(source)})
    return data_dir


def entry(data_dir, *argv):
    return _enter.main(["--backend", "proot", "--data-dir", str(data_dir), *argv])


def test_entry_puts_fetches_and_lists(container, monkeypatch, capsysbinary):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\x00\xffbinary")))
    assert entry(container, "--name", "box", "put", "--", "/etc/blob") == 0
    assert (container / "containers" / "box" / "rootfs" / "etc" / "blob").read_bytes() == b"\x00\xffbinary"
    capsysbinary.readouterr()
    assert entry(container, "--name", "box", "fetch", "/etc/blob") == 0
    assert capsysbinary.readouterr().out == b"\x00\xffbinary"
    assert entry(container, "list") == 0
    listed = json.loads(capsysbinary.readouterr().out)
    assert [(c["name"], c["status"]) for c in listed] == [("box", "created")]


def test_entry_failures_are_one_line_and_exit_125(container, capsysbinary):
    cases = [
        (["--name", "ghost", "fetch", "/etc/blob"], b"volt: container ghost does not exist"),
        (["--name", "box", "exec", "--", "/bin/true"], b"volt: container box is not running (status: created)"),
        (["--name", "../x", "fetch", "/etc/blob"], b"'../x'"),
        (["--name", "box", "fetch", "/a", "/b"], b"fetch takes one path"),
    ]
    for argv, message in cases:
        assert entry(container, *argv) == _enter.ENTRY_FAILED
        err = capsysbinary.readouterr().err
        assert err.startswith(b"volt: ") and message in err and err.count(b"\n") == 1
