"""_enter: file access through a container's root filesystem (symlinks never lead out) and the
entry command the connection plugin runs on a container's host, on real proot containers."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import threading

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._proot import ProotBackend
from ansible_collections.armoredgate.volt.plugins.module_utils._entry import _host_entry
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner


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
    assert _host_entry.guest_file(str(rootfs), "/abs-etc/hostname", for_writing=False) == str(
        rootfs / "etc" / "hostname"
    )
    assert _host_entry.guest_file(str(rootfs), "/srv/up/etc/hostname", for_writing=False) == str(
        rootfs / "etc" / "hostname"
    )
    cases = [
        ("relative/path", True, "must be absolute"),
        ("/missing/dir/file", True, "'/missing/dir' does not exist"),
        ("/dangling", True, "symlink to nothing"),
        ("/srv/data", True, "is a directory"),
        ("/etc/nothing", False, "does not exist in the container"),
    ]
    for path, writing, message in cases:
        with pytest.raises(VoltError, match=message):
            _host_entry.guest_file(str(rootfs), path, for_writing=writing)


def test_write_and_read_keep_modes_and_leave_no_temporary(rootfs, tmp_path):
    _host_entry.write_guest_file(str(rootfs), "/abs-etc/new.bin", io.BytesIO(bytes(range(256))))
    target = rootfs / "etc" / "new.bin"
    assert target.read_bytes() == bytes(range(256)) and stat.S_IMODE(target.stat().st_mode) == 0o644
    target.chmod(0o600)
    _host_entry.write_guest_file(str(rootfs), "/etc/new.bin", io.BytesIO(b"again"))
    assert target.read_bytes() == b"again" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [name for name in os.listdir(rootfs / "etc") if name.startswith(".volt-put-")] == []
    assert not os.path.exists("/etc/new.bin")  # written in the root, never on the host
    sink = io.BytesIO()
    _host_entry.read_guest_file(str(rootfs), "/srv/up/etc/new.bin", sink)
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
    return _host_entry.main(["--backend", "proot", "--data-dir", str(data_dir), *argv])


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
        assert entry(container, *argv) == _host_entry.ENTRY_FAILED
        err = capsysbinary.readouterr().err
        assert err.startswith(b"volt: ") and message in err and err.count(b"\n") == 1


# Hostile guest trees: whatever the guest's symlinks say, files are read and written in its root.


def fetched(rootfs, path):
    sink = io.BytesIO()
    _host_entry.read_guest_file(str(rootfs), path, sink)
    return sink.getvalue()


def test_symlinks_out_of_the_root_are_clamped_inside_it(rootfs):
    (rootfs / "etc" / "passwd").write_text("guest passwd\n")
    os.symlink("../../../../etc", rootfs / "srv" / "data" / "host-etc")  # would be the host's /etc
    os.symlink("/etc/passwd", rootfs / "root" / "passwd")  # absolute: the guest's /etc/passwd
    assert fetched(rootfs, "/srv/data/host-etc/passwd") == b"guest passwd\n"
    assert fetched(rootfs, "/root/passwd") == b"guest passwd\n"
    _host_entry.write_guest_file(str(rootfs), "/srv/data/host-etc/volt-clamped", io.BytesIO(b"in the root"))
    assert (rootfs / "etc" / "volt-clamped").read_bytes() == b"in the root"
    assert not os.path.exists("/etc/volt-clamped")


def test_links_to_host_paths_point_to_nothing(rootfs, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(b"host")
    os.symlink(str(host / "secret"), rootfs / "etc" / "abs-secret")
    os.symlink(str(host), rootfs / "etc" / "abs-dir")
    with pytest.raises(VoltError, match="symlink to nothing"):
        fetched(rootfs, "/etc/abs-secret")
    with pytest.raises(VoltError, match="symlink to nothing"):
        _host_entry.write_guest_file(str(rootfs), "/etc/abs-secret", io.BytesIO(b"x"))
    with pytest.raises(VoltError, match="'/etc/abs-dir' does not exist"):
        _host_entry.write_guest_file(str(rootfs), "/etc/abs-dir/new", io.BytesIO(b"x"))
    assert sorted(os.listdir(host)) == ["secret"] and (host / "secret").read_bytes() == b"host"


def test_symlink_loops_fail_clearly(rootfs):
    os.symlink("/loop-b", rootfs / "loop-a")
    os.symlink("loop-a", rootfs / "loop-b")
    for path in ("/loop-a", "/loop-b/file"):
        with pytest.raises(VoltError, match=r"^'.*' in the container: too many levels of symbolic links$"):
            fetched(rootfs, path)
        with pytest.raises(VoltError, match="too many levels of symbolic links"):
            _host_entry.write_guest_file(str(rootfs), path, io.BytesIO(b"x"))


def test_put_keeps_modes_and_follows_links_inside_the_root(rootfs):
    script = rootfs / "srv" / "data" / "run.sh"
    script.write_text("old")
    script.chmod(0o750)
    os.symlink("srv/data", rootfs / "data")  # the parent is a symlink to a directory in the root
    _host_entry.write_guest_file(str(rootfs), "/data/run.sh", io.BytesIO(b"new"))
    assert script.read_bytes() == b"new" and stat.S_IMODE(script.stat().st_mode) == 0o750
    os.symlink("../srv/data/run.sh", rootfs / "etc" / "run-link")  # the last component is a symlink
    _host_entry.write_guest_file(str(rootfs), "/etc/run-link", io.BytesIO(b"via link"))
    assert os.path.islink(rootfs / "etc" / "run-link") and script.read_bytes() == b"via link"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750
    _host_entry.write_guest_file(str(rootfs), "/data/fresh", io.BytesIO(b""))
    assert stat.S_IMODE((rootfs / "srv" / "data" / "fresh").stat().st_mode) == 0o644


def test_failed_put_leaves_the_target_and_no_temporary(rootfs):
    class Broken(io.BytesIO):
        def read(self, size=-1):
            raise OSError("source broke")

    (rootfs / "etc" / "keep").write_bytes(b"kept")
    with pytest.raises(OSError, match="source broke"):
        _host_entry.write_guest_file(str(rootfs), "/etc/keep", Broken())
    assert (rootfs / "etc" / "keep").read_bytes() == b"kept"
    assert [name for name in os.listdir(rootfs / "etc") if name.startswith(".volt-put-")] == []
    for path in ("/srv/data", "/srv/data/", "/"):
        with pytest.raises(VoltError, match="is a directory"):
            _host_entry.write_guest_file(str(rootfs), path, io.BytesIO(b"x"))
    assert [name for name in os.listdir(rootfs / "srv" / "data") if name.startswith(".volt-put-")] == []


def test_fetch_refuses_what_is_not_a_regular_file_without_blocking(rootfs):

    os.mkfifo(rootfs / "srv" / "fifo")  # opening it for reading would wait for a writer
    os.symlink("/srv/fifo", rootfs / "fifo-link")
    outcome = []

    def attempt():
        for path in ("/srv/fifo", "/fifo-link", "/srv/data", "/srv/data/"):
            try:
                fetched(rootfs, path)
            except VoltError as exc:
                outcome.append(exc.msg)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "fetch blocked"
    assert outcome == [
        "'/srv/fifo' in the container is not a regular file",
        "'/fifo-link' in the container is not a regular file",
        "'/srv/data' in the container is a directory",
        "'/srv/data/' in the container is a directory",
    ]


def test_fetch_never_opens_a_device_node(rootfs):
    try:
        os.mknod(rootfs / "srv" / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # the host's /dev/zero
    except PermissionError:
        pytest.skip("making a device node needs CAP_MKNOD")
    with pytest.raises(VoltError, match="not a regular file"):
        fetched(rootfs, "/srv/zero")


def test_entry_reports_a_symlink_loop_in_one_line(container, capsysbinary):
    rootfs = container / "containers" / "box" / "rootfs"
    os.symlink("/etc/loop", rootfs / "etc" / "loop")
    assert entry(container, "--name", "box", "fetch", "/etc/loop") == _host_entry.ENTRY_FAILED
    assert capsysbinary.readouterr().err == b"volt: '/etc/loop' in the container: too many levels of symbolic links\n"
