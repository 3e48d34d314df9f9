"""_guest_path: walking a guest path by file descriptors, symlinks resolved as the guest sees them."""

from __future__ import annotations

import errno
import os

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._files import _guest_path
from ansible_collections.armoredgate.volt.plugins.module_utils._files._guest_path import GuestPathError


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "rootfs"
    for directory in ("etc", "srv/data", "a/b/c"):
        (root / directory).mkdir(parents=True)
    (root / "etc" / "hostname").write_text("guest\n")
    return root


@pytest.fixture
def root_fd(root):
    fd = _guest_path.open_root(str(root))
    yield fd
    os.close(fd)


def located(root_fd, path, follow=True):
    """(guest path, host directory's inode, name, linked) of what path resolves to."""
    with _guest_path.locate(root_fd, path, follow) as location:
        return location.guest, os.fstat(location.dir_fd).st_ino, location.name, location.linked


def ino(path):
    return os.stat(path).st_ino


def test_plain_paths_and_dots(root, root_fd):
    assert located(root_fd, "/etc/hostname") == ("/etc/hostname", ino(root / "etc"), "hostname", False)
    assert located(root_fd, "/a/./b/../b/c/") == ("/a/b/c", ino(root / "a/b/c"), "", False)
    assert located(root_fd, "/") == ("/", ino(root), "", False)
    assert located(root_fd, "/etc/missing") == ("/etc/missing", ino(root / "etc"), "missing", False)


def test_dotdot_stops_at_the_root(root, root_fd):
    # The host has /etc/hostname too; these must all mean the guest's.
    for path in ("/../../../etc/hostname", "/a/b/c/../../../../../../etc/hostname", "/../etc/../../etc/hostname"):
        assert located(root_fd, path) == ("/etc/hostname", ino(root / "etc"), "hostname", False)


def test_symlinks_resolve_inside_the_root(root, root_fd):
    os.symlink("/etc", root / "abs-etc")  # absolute: the guest's /etc
    os.symlink("../../../../etc", root / "a" / "b" / "up-etc")  # climbs: stops at the guest's /
    os.symlink("hostname", root / "etc" / "alias")  # relative, in the same directory
    os.symlink("/a/b/up-etc/alias", root / "chain")  # links through links
    assert located(root_fd, "/abs-etc/hostname")[:2] == ("/etc/hostname", ino(root / "etc"))
    assert located(root_fd, "/a/b/up-etc/hostname")[:2] == ("/etc/hostname", ino(root / "etc"))
    assert located(root_fd, "/chain") == ("/etc/hostname", ino(root / "etc"), "hostname", True)
    # Not following the last component leaves the link itself.
    assert located(root_fd, "/chain", follow=False) == ("/chain", ino(root), "chain", False)


def test_host_paths_in_links_stay_in_the_root(root, root_fd, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host")
    os.symlink(str(host), root / "to-host")  # absolute host path: means <root>/<that path>
    os.symlink("../../host", root / "etc" / "rel-host")  # would reach the host dir from the host's view
    for path in ("/to-host/secret", "/etc/rel-host/secret"):
        with pytest.raises(GuestPathError) as caught:
            _guest_path.locate(root_fd, path)
        assert caught.value.errno == errno.ENOENT and caught.value.linked is False
    # As a last component the link points to nothing inside the root.
    with pytest.raises(GuestPathError) as caught:
        _guest_path.locate(root_fd, "/to-host")
    assert caught.value.linked is True


def test_missing_and_non_directory_components(root, root_fd):
    for path, code in (("/nothing/file", errno.ENOENT), ("/etc/hostname/file", errno.ENOTDIR)):
        with pytest.raises(GuestPathError) as caught:
            _guest_path.locate(root_fd, path)
        assert caught.value.errno == code and caught.value.filename == os.path.dirname(path)
    with pytest.raises(GuestPathError, match="Not a directory"):
        _guest_path.locate(root_fd, "/etc/hostname/")  # a trailing slash wants a directory


def test_symlink_loops_end_with_eloop(root, root_fd):
    os.symlink("/b", root / "a-loop")
    os.symlink("/a-loop", root / "b")
    os.symlink("self", root / "self")
    for path in ("/a-loop", "/self/x", "/b/x/y"):
        with pytest.raises(GuestPathError) as caught:
            _guest_path.locate(root_fd, path)
        assert caught.value.errno == errno.ELOOP
    # 40 hops are allowed, as by the kernel.
    for hop in range(40):
        os.symlink(f"hop{hop + 1}" if hop < 39 else "etc", root / f"hop{hop}")
    assert located(root_fd, "/hop0/hostname")[0] == "/etc/hostname"
    os.rename(root / "hop39", root / "hop40")
    os.symlink("hop40", root / "hop39")
    with pytest.raises(GuestPathError, match="Too many levels"):
        _guest_path.locate(root_fd, "/hop0/hostname")


def test_open_root_refuses_a_symlink(root, tmp_path):
    os.symlink(root, tmp_path / "link")
    with pytest.raises(OSError) as caught:
        _guest_path.open_root(str(tmp_path / "link"))
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)


def test_open_regular_opens_only_regular_files(root, root_fd):
    os.mkfifo(root / "fifo")
    with _guest_path.locate(root_fd, "/etc/hostname") as location:
        fd = _guest_path.open_regular(location)
        with os.fdopen(fd, "rb") as handle:
            assert handle.read() == b"guest\n"
    with _guest_path.locate(root_fd, "/fifo") as location, pytest.raises(OSError, match="not a regular file"):
        _guest_path.open_regular(location)  # would block on open without a writer
    for path in ("/etc", "/etc/"):
        with _guest_path.locate(root_fd, path) as location, pytest.raises(IsADirectoryError):
            _guest_path.open_regular(location)


def test_no_descriptor_is_left_open(root, root_fd):
    os.symlink("/etc", root / "abs-etc")
    os.symlink("/x", root / "loop-x")
    os.symlink("/loop-x", root / "x")
    before = sorted(os.listdir("/proc/self/fd"))
    for path in ("/abs-etc/hostname", "/a/b/c/../../..", "/nothing/x", "/x/y", "/etc/hostname/z"):
        try:
            _guest_path.locate(root_fd, path).close()
        except GuestPathError:
            pass
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_mount_points_are_made_with_sensible_modes_inside_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "srv").mkdir(parents=True)
    outside.mkdir()
    (root / "data").symlink_to("/srv")  # the guest's own symlink: resolved in the root
    (root / "escape").symlink_to(str(outside))  # a symlink to a host path: a dangling one in the root
    _guest_path.make_mount_point(str(root), "/deep/new/dir")
    _guest_path.make_mount_point(str(root), "/etc/app.conf", directory=False)
    _guest_path.make_mount_point(str(root), "/data/inside")
    assert [oct(os.stat(root / p).st_mode & 0o7777) for p in ("deep", "deep/new", "deep/new/dir")] == ["0o755"] * 3
    assert os.path.isfile(root / "etc" / "app.conf") and os.stat(root / "etc" / "app.conf").st_mode & 0o777 == 0o644
    assert os.path.isdir(root / "srv" / "inside")
    with pytest.raises(OSError):
        _guest_path.make_mount_point(str(root), "/escape/inside")
    assert os.listdir(outside) == []  # never the host's directory


def test_guest_files_are_written_inside_the_root_and_only_replaced_when_asked(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.write_text("host\n")
    (root / "etc" / "hosts").symlink_to(str(outside))  # points out of the root
    assert _guest_path.write_file(str(root), "/etc/resolv.conf", "nameserver 10.0.0.1\n", replace=False)
    assert not _guest_path.write_file(str(root), "/etc/resolv.conf", "other\n", replace=False)
    assert (root / "etc" / "resolv.conf").read_text() == "nameserver 10.0.0.1\n"
    assert _guest_path.write_file(str(root), "/etc/resolv.conf", "other\n", replace=True)
    assert (root / "etc" / "resolv.conf").read_text() == "other\n"
    _guest_path.write_file(str(root), "/etc/hosts", "guest\n", replace=True)
    assert outside.read_text() == "host\n"  # the host's file was not touched
