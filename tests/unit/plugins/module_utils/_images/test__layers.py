"""The layer applier on real tar streams and a real directory: image-spec rules and safety."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._images import _layers
from ansible_collections.armoredgate.volt.plugins.module_utils._images._layers import LayerApplier, LayerError


@pytest.fixture(autouse=True, params=[1, 4], ids=["in-order", "4-writers"])
def writers(request, monkeypatch):
    """Every test runs with files written in order and by worker threads: the results must match."""
    monkeypatch.setattr(_layers, "WRITERS", request.param)
    return request.param


def layer(*entries) -> tarfile.TarFile:
    """Build a layer: entries are (name, kind, extra) with kind file|dir|sym|link|chr and extra the
    content, link target or mode."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, *extra in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            data = None
            if kind == "file":
                data = extra[0] if extra else b""
                info.size = len(data)
                info.mode = extra[1] if len(extra) > 1 else 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = extra[0] if extra else 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, extra[0]
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, extra[0]
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer, mode="r|")


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def apply(root, *entries, rootless=True):
    applier = LayerApplier(str(root), rootless=rootless)
    applier.apply(layer(*entries), "sha256:test")
    return applier


def listing(root):
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def test_files_modes_links_and_unicode(root):
    apply(
        root,
        ("etc", "dir"),
        ("etc/motd", "file", b"hello\n"),
        ("bin", "dir"),
        ("bin/su", "file", b"#!/bin/sh\n", 0o4755),
        ("etc/secret", "file", b"x", 0o600),
        ("etc/link", "sym", "/etc/motd"),
        ("etc/hard", "link", "etc/motd"),
        ("empty", "dir", 0o700),
        ("données/été.txt", "file", b"\xc3\xa9"),
        ("./relative/./dots", "file", b"ok"),
    )
    assert (root / "etc/motd").read_bytes() == b"hello\n"
    assert stat.S_IMODE(os.stat(root / "bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(root / "etc/secret").st_mode) == 0o600
    assert os.readlink(root / "etc/link") == "/etc/motd"  # stored as is, never followed
    assert os.stat(root / "etc/hard").st_ino == os.stat(root / "etc/motd").st_ino
    assert stat.S_IMODE(os.stat(root / "empty").st_mode) == 0o700 and not os.listdir(root / "empty")
    assert (root / "données/été.txt").read_bytes() == b"\xc3\xa9"
    assert (root / "relative/dots").read_bytes() == b"ok"
    assert os.stat(root / "etc/motd").st_mtime == 1_700_000_000


def test_whiteouts_delete_and_never_appear(root):
    apply(
        root,
        ("a", "dir"),
        ("a/keep", "file", b"1"),
        ("a/gone", "file", b"2"),
        ("gonedir", "dir"),
        ("gonedir/x", "file", b"3"),
    )
    apply(root, ("a/.wh.gone", "file"), (".wh.gonedir", "file"), ("a/.wh.never-existed", "file"))
    assert sorted(listing(root)) == ["a", "a/keep"]


def test_non_directories_are_replaced_and_directories_kept(root):
    apply(
        root,
        ("x", "file", b"file"),
        ("d", "dir", 0o755),
        ("d/child", "file", b"c"),
        ("f", "dir"),
        ("f/inside", "file", b"i"),
    )
    apply(root, ("x", "dir", 0o750), ("d", "dir", 0o700), ("f", "file", b"now a file"))
    assert (root / "x").is_dir() and stat.S_IMODE(os.stat(root / "x").st_mode) == 0o750
    assert (root / "d/child").read_bytes() == b"c" and stat.S_IMODE(os.stat(root / "d").st_mode) == 0o700
    assert (root / "f").read_bytes() == b"now a file"


@pytest.mark.parametrize("marker_first", [True, False])
def test_opaque_directory_hides_lower_children_wherever_the_marker_is(root, marker_first):
    apply(
        root,
        ("d", "dir"),
        ("d/old", "file", b"o"),
        ("d/sub", "dir"),
        ("d/sub/old2", "file", b"o"),
        ("other", "file", b"kept"),
    )
    marker = ("d/.wh..wh..opq", "file")
    new = [("d", "dir"), ("d/new", "file", b"n"), ("d/sub", "dir"), ("d/sub/new2", "file", b"n")]
    apply(root, *([marker, *new] if marker_first else [*new, marker]))
    assert sorted(listing(root)) == ["d", "d/new", "d/sub", "d/sub/new2", "other"]


def test_read_only_directory_still_receives_its_children(root):
    apply(root, ("ro", "dir", 0o555), ("ro/file", "file", b"x"))
    assert (root / "ro/file").read_bytes() == b"x" and stat.S_IMODE(os.stat(root / "ro").st_mode) == 0o555
    os.chmod(root / "ro", 0o755)


def test_device_nodes_are_skipped_rootless(root):
    applier = apply(root, ("dev", "dir"), ("dev/null", "chr"))
    assert applier.skipped == ["dev/null"] and not (root / "dev/null").exists()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape", "file", b"x")], "climbs out with '..'"),
        ([("a/../../escape", "file", b"x")], "climbs out"),
        ([("/abs-escape", "file", b"x")], "is an absolute path"),
        ([("link", "sym", "/tmp"), ("link/owned", "file", b"x")], "goes through the symlink 'link'"),
        ([("link", "sym", "../../.."), ("link/owned", "file", b"x")], "goes through the symlink"),
        ([("evil", "link", "../../etc/passwd")], "climbs out"),
        ([("evil", "link", "/etc/passwd")], "is an absolute path"),
        ([("evil", "link", "does/not/exist")], "not a file in the image"),
        ([("d", "dir"), ("evil", "link", "d")], "not a file in the image"),
        ([("f", "file", b"x"), ("f/child", "file", b"y")], "below a non-directory"),
        ([("a", "dir"), ("a/.wh..", "file")], "names no entry"),
        ([("a", "dir"), ("a/.wh...", "file")], "names no entry"),
    ],
)
def test_malicious_entries_fail_clearly_and_write_nothing_outside(tmp_path, root, entries, message):
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(LayerError, match=message) as info:
        apply(root, *entries)
    assert "sha256:test" in info.value.msg
    assert sorted(os.listdir(tmp_path)) == before
    assert not os.path.exists("/tmp/owned")


def test_symlink_in_a_lower_layer_is_not_followed_by_an_upper_one(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    apply(root, ("lib", "sym", str(outside)))
    with pytest.raises(LayerError, match="goes through the symlink 'lib'"):
        apply(root, ("lib/payload.so", "file", b"x"))
    assert os.listdir(outside) == []


def test_queued_files_are_settled_before_a_later_entry_depends_on_them(root):
    """Same path twice, a hard link to a just-queued file, a directory replacing one, and a
    whiteout of a lower file re-added: the worker threads must not reorder any of it."""
    apply(root, ("lower", "file", b"lower"))
    many = [(f"bulk/f{number}", "file", b"x" * number) for number in range(200)]
    apply(
        root,
        ("bulk", "dir", 0o555),
        *many,
        ("twice", "file", b"first"),
        ("twice", "file", b"second"),
        ("target", "file", b"linked"),
        ("hard", "link", "target"),
        ("becomes-dir", "file", b"f"),
        ("becomes-dir", "dir", 0o750),
        ("becomes-dir/child", "file", b"c"),
    )
    apply(root, (".wh.lower", "file"), ("big", "file", b"y" * (_layers._QUEUED_FILE + 1)))
    assert (root / "twice").read_bytes() == b"second"
    assert os.stat(root / "hard").st_ino == os.stat(root / "target").st_ino
    assert (root / "becomes-dir/child").read_bytes() == b"c"
    assert stat.S_IMODE(os.stat(root / "becomes-dir").st_mode) == 0o750
    assert len(os.listdir(root / "bulk")) == 200 and (root / "bulk/f199").read_bytes() == b"x" * 199
    assert stat.S_IMODE(os.stat(root / "bulk").st_mode) == 0o555
    assert not (root / "lower").exists() and (root / "big").stat().st_size == _layers._QUEUED_FILE + 1
    os.chmod(root / "bulk", 0o755)


def test_a_failed_queued_write_fails_the_layer(root):
    """A name longer than the file system allows fails in the worker; apply() must raise it."""
    with pytest.raises(OSError, match="File name too long"):
        apply(root, ("ok", "file", b"1"), ("n" * 300, "file", b"x"), ("after", "file", b"2"))
