"""The layer applier against hostile layers: nothing outside the image tree may change.

Every test keeps a "host" directory next to the image root and checks, after the attack, that
its modes, owners, times, contents and entries are exactly as before.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import tarfile

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._images import _layers
from ansible_collections.armoredgate.volt.plugins.module_utils._images._layers import LayerApplier, LayerError

LAYER = "sha256:hostile"
MTIME = 1_700_000_000


@pytest.fixture(autouse=True, params=[1, 4], ids=["in-order", "4-writers"])
def writers(request, monkeypatch):
    monkeypatch.setattr(_layers, "WRITERS", request.param)
    return request.param


@pytest.fixture(params=[False, True], ids=["root", "rootless"])
def rootless(request):
    return request.param


def entry(name: str, kind: str = "file", data: bytes = b"", *, mode: int | None = None, uid: int = 0, target: str = ""):
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid = MTIME, uid, uid
    types = {
        "file": tarfile.REGTYPE,
        "dir": tarfile.DIRTYPE,
        "sym": tarfile.SYMTYPE,
        "link": tarfile.LNKTYPE,
        "chr": tarfile.CHRTYPE,
        "blk": tarfile.BLKTYPE,
        "fifo": tarfile.FIFOTYPE,
    }
    info.type = types[kind]
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.linkname = target
    if kind in ("chr", "blk"):
        info.devmajor, info.devminor = (1, 3) if kind == "chr" else (7, 0)
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def tar_bytes(*entries) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def stream(data: bytes, compressed: bool = False) -> tarfile.TarFile:
    if compressed:
        return tarfile.open(fileobj=io.BytesIO(data), mode="r|gz")
    return tarfile.open(fileobj=io.BytesIO(data), mode="r|")


def apply(applier: LayerApplier, *entries) -> LayerApplier:
    applier.apply(stream(tar_bytes(*entries)), LAYER)
    return applier


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


@pytest.fixture
def host(tmp_path):
    """A directory outside the image tree that the attacks aim at."""
    path = tmp_path / "host"
    path.mkdir()
    (path / "secret").mkdir(mode=0o700)
    (path / "secret" / "z").mkdir(mode=0o700)
    (path / "passwd").write_bytes(b"root:x:0:0::/root:/bin/sh\n")
    os.chmod(path / "passwd", 0o644)
    for child in ("secret/z", "secret", "passwd", "."):
        os.utime(path / child, (1_600_000_000, 1_600_000_000))
    return path


def snapshot(path) -> dict:
    """Everything an attack could change below path (lstat: symlinks are not followed)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [".", *dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            content = open(full, "rb").read() if stat.S_ISREG(info.st_mode) else None
            found[os.path.relpath(full, path)] = (info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, content)
    return found


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- bug 1: every component of every path stays inside the tree -----------------------------------


@pytest.mark.parametrize(
    "case",
    [(["a", "a/secret"], "a"), (["x", "x/y", "x/y/secret", "x/y/secret/z"], "x/y")],
    ids=["first-component", "middle-component"],
)
@pytest.mark.parametrize("swap", ["symlink", "hard-link-to-symlink"])
def test_directory_swapped_for_a_symlink_in_the_same_layer_leaves_the_host_alone(root, host, rootless, case, swap):
    """The deferred directory-attribute pass must not follow a parent that became a symlink."""
    dirs, swapped = case
    before = snapshot(host)
    entries = [entry("pointer", "sym", target=str(host))] if swap != "symlink" else []
    entries += [entry(name, "dir", mode=0o777, uid=4242) for name in dirs]
    if swap == "symlink":
        entries.append(entry(swapped, "sym", target=str(host)))
    else:
        entries.append(entry(swapped, "link", target="pointer"))
    apply(LayerApplier(str(root), rootless=rootless), *entries)
    assert snapshot(host) == before
    assert os.readlink(root / swapped) == str(host)


def test_directory_swapped_for_a_symlink_in_a_later_layer_leaves_the_host_alone(root, host, rootless):
    before = snapshot(host)
    applier = LayerApplier(str(root), rootless=rootless)
    apply(applier, entry("a", "dir"), entry("a/secret", "dir", mode=0o700))
    apply(
        applier,
        entry("a/secret", "dir", mode=0o777, uid=4242),
        entry("a/secret/new", "file", b"x"),
        entry("a", "sym", target=str(host)),
    )
    with pytest.raises(LayerError, match="goes through the symlink 'a'"):
        apply(applier, entry("a/secret", "dir", mode=0o777, uid=4242))
    with pytest.raises(LayerError, match="goes through the symlink 'a'"):
        apply(applier, entry("a/secret/z/", "dir", mode=0o777, uid=4242))
    assert snapshot(host) == before


def test_files_queued_below_a_directory_that_becomes_a_symlink_land_inside(root, host, rootless, writers):
    before = snapshot(host)
    files = [entry(f"a/secret/f{number}", "file", b"x" * number, mode=0o4777, uid=4242) for number in range(50)]
    apply(
        LayerApplier(str(root), rootless=rootless),
        entry("a", "dir"),
        entry("a/secret", "dir"),
        *files,
        entry("a", "sym", target=str(host)),
    )
    assert snapshot(host) == before


def test_hard_link_target_through_a_symlink_is_refused(root, host, rootless):
    before = snapshot(host)
    with pytest.raises(LayerError, match="goes through the symlink 'l'") as info:
        apply(
            LayerApplier(str(root), rootless=rootless),
            entry("l", "sym", target=str(host)),
            entry("evil", "link", target="l/passwd"),
        )
    assert LAYER in info.value.msg
    assert snapshot(host) == before and os.stat(host / "passwd").st_nlink == 1
    assert not os.path.lexists(root / "evil")


def test_whiteouts_and_opaque_markers_never_reach_through_a_symlink(root, host, rootless):
    before = snapshot(host)
    applier = LayerApplier(str(root), rootless=rootless)
    apply(applier, entry("l", "sym", target=str(host)), entry("d", "dir"), entry("d/l", "sym", target=str(host)))
    apply(applier, entry("l/.wh..wh..opq", "file"), entry("d/l/.wh..wh..opq", "file"), entry("d/.wh..wh..opq", "file"))
    with pytest.raises(LayerError, match="goes through the symlink 'l'"):
        apply(applier, entry("l/.wh.passwd", "file"))
    with pytest.raises(LayerError, match="goes through the symlink 'l'"):
        apply(applier, entry("l/secret/.wh..wh..opq", "file"))
    apply(applier, entry(".wh.l", "file"))
    assert snapshot(host) == before
    assert sorted(os.listdir(root)) == ["d"] and os.listdir(root / "d") == []


def test_removing_a_tree_never_follows_its_symlinks(root, host, rootless):
    before = snapshot(host)
    applier = LayerApplier(str(root), rootless=rootless)
    apply(
        applier,
        entry("d", "dir", mode=0o555),
        entry("d/sub", "dir", mode=0o500),
        entry("d/sub/file", "file", b"x", mode=0o400),
        entry("d/sub/l", "sym", target=str(host)),
        entry("d/l", "sym", target=str(host / "secret")),
    )
    apply(applier, entry(".wh.d", "file"))
    assert snapshot(host) == before and os.listdir(root) == []


def test_an_entry_replacing_a_symlink_does_not_touch_its_target(root, host, rootless):
    before = snapshot(host)
    applier = LayerApplier(str(root), rootless=rootless)
    apply(applier, entry("l", "sym", target=str(host)), entry("m", "sym", target=str(host / "passwd")))
    apply(applier, entry("l", "dir", mode=0o777, uid=4242), entry("m", "file", b"mine", mode=0o777, uid=4242))
    assert snapshot(host) == before
    assert (root / "l").is_dir() and not (root / "l").is_symlink() and (root / "m").read_bytes() == b"mine"


def test_a_symlink_to_itself_or_a_long_component_fails_as_a_layer_error(root, rootless):
    with pytest.raises(LayerError, match=LAYER):
        apply(LayerApplier(str(root), rootless=rootless), entry("loop", "sym", target="loop"), entry("loop/x", "file"))
    with pytest.raises(LayerError, match=LAYER) as info:
        apply(LayerApplier(str(root), rootless=rootless), entry("n" * 300 + "/f", "file", b"x"))
    assert "n" * 300 in info.value.msg


def test_many_directories_beyond_the_fd_cache_and_no_fd_leak(root, rootless):
    fds = open_fds()
    entries = []
    for number in range(600):
        entries += [entry(f"t/d{number}", "dir", mode=0o750), entry(f"t/d{number}/f", "file", b"%d" % number)]
    entries += [entry(f"deep/{'/'.join(['p'] * 300)}/leaf", "file", b"deep")]
    applier = apply(LayerApplier(str(root), rootless=rootless), entry("t", "dir"), *entries)
    apply(applier, entry("t/d7/.wh.f", "file"), entry("t/.wh.d8", "file"), entry("deep/.wh.p", "file"))
    assert open_fds() == fds
    assert (root / "t/d599/f").read_bytes() == b"599" and stat.S_IMODE(os.stat(root / "t/d3").st_mode) == 0o750
    assert not (root / "t/d7/f").exists() and not (root / "t/d8").exists() and os.listdir(root / "deep") == []


# -- bug 2: device nodes --------------------------------------------------------------------------


def test_device_nodes_are_never_created_even_as_root(root):
    applier = apply(
        LayerApplier(str(root), rootless=False),
        entry("dev", "dir"),
        entry("dev/null", "chr", mode=0o666),
        entry("dev/loop0", "blk", mode=0o660),
        entry("dev/also-null", "link", target="dev/null"),
        entry("dev/fifo", "fifo", mode=0o640),
    )
    assert applier.skipped == ["dev/null", "dev/loop0", "dev/also-null"]
    assert sorted(os.listdir(root / "dev")) == ["fifo"]
    assert (
        stat.S_ISFIFO(os.lstat(root / "dev/fifo").st_mode)
        and stat.S_IMODE(os.lstat(root / "dev/fifo").st_mode) == 0o640
    )


# -- bug 3: unbounded decompression ---------------------------------------------------------------


def test_a_header_claiming_more_than_the_limit_fails_before_reading(root):
    huge = tarfile.TarInfo("huge")
    huge.size = 5 * 1024**3  # the stream holds none of it
    data = huge.tobuf(tarfile.USTAR_FORMAT)
    with pytest.raises(LayerError, match="1048576 bytes") as info:
        LayerApplier(str(root), max_bytes=1024 * 1024).apply(stream(data), LAYER)
    assert LAYER in info.value.msg and os.listdir(root) == []


@pytest.mark.parametrize("size", [300 * 1024, 2 * 1024 * 1024], ids=["queued", "streamed"])
def test_the_limit_counts_every_layer_of_one_applier(root, size):
    applier = LayerApplier(str(root), max_bytes=3 * size)
    apply(applier, entry("one", "file", b"1" * size), entry("two", "file", b"2" * size))
    apply(applier, entry("three", "file", b"3" * size))  # exactly the limit
    with pytest.raises(LayerError, match=f"{3 * size} bytes"):
        apply(applier, entry("empty", "file", b""), entry("four", "file", b"4"))
    assert not (root / "four").exists()


# -- bug 4: truncated and unterminated streams ----------------------------------------------------


def complete() -> bytes:
    return tar_bytes(
        entry("a", "dir"),
        entry("a/small", "file", b"s" * 5000),
        entry("big", "file", b"b" * (_layers._QUEUED_FILE + 4096)),
        entry("last", "file", b"end"),
    )


def last_header(data: bytes) -> int:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getmembers()[-1].offset


def boundary(data: bytes) -> int:
    """Offset just after the last member's data: where the end-of-archive blocks start."""
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        last = archive.getmembers()[-1]
        return last.offset_data + (last.size + 511) // 512 * 512


@pytest.mark.parametrize(
    "cut",
    [
        pytest.param(lambda data: data[: 1024 + 2000], id="inside-a-small-file"),
        pytest.param(lambda data: data[: len(data) // 2], id="inside-a-streamed-file"),
        pytest.param(lambda data: data[: last_header(data) + 100], id="inside-a-header"),
        pytest.param(lambda data: data[: boundary(data)], id="at-a-member-boundary"),
        pytest.param(lambda data: data[: boundary(data) + 512], id="one-zero-block"),
        pytest.param(lambda data: data[: boundary(data)] + b"\x01" * 512 + bytes(1024), id="garbage-header"),
    ],
)
@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "tar.gz"])
def test_a_truncated_or_unterminated_layer_is_a_layer_error(root, cut, compressed):
    data = cut(complete())
    with pytest.raises(LayerError, match=LAYER):
        LayerApplier(str(root)).apply(stream(gzip.compress(data) if compressed else data, compressed), LAYER)


def test_a_compressed_stream_cut_short_is_a_layer_error(root):
    data = gzip.compress(complete())
    with pytest.raises(LayerError, match=LAYER):
        LayerApplier(str(root)).apply(stream(data[: len(data) // 2], compressed=True), LAYER)


def test_complete_layers_and_empty_layers_still_apply(root):
    for data in (complete(), tar_bytes()):
        LayerApplier(str(root)).apply(stream(data), LAYER)
        LayerApplier(str(root)).apply(stream(gzip.compress(data), compressed=True), LAYER)
    assert (root / "last").read_bytes() == b"end" and (root / "big").stat().st_size == _layers._QUEUED_FILE + 4096


# -- open_layer: compressed streams are checked to their end ----------------------------------------


def compress(data: bytes, kind: str) -> bytes:
    return {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress, "plain": bytes}[kind](data)


def apply_file(root, data: bytes, compression="auto") -> LayerApplier:
    applier = LayerApplier(str(root))
    with _layers.open_layer(io.BytesIO(data), LAYER, compression) as archive:
        applier.apply(archive, LAYER)
    return applier


@pytest.mark.parametrize("kind", ["plain", "gzip", "bzip2", "xz"])
def test_open_layer_reads_every_compression_and_refuses_a_cut_stream(root, kind):
    data = compress(complete(), kind)
    apply_file(root, data)
    assert (root / "last").read_bytes() == b"end"
    cuts = [data[: len(data) // 2]]
    if kind != "plain":  # a plain tar's last bytes are record padding: losing some is harmless
        cuts.append(data[: len(data) - 4])
    for cut in cuts:
        with pytest.raises(LayerError, match=LAYER):
            apply_file(root, cut)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-8] + bytes([data[-8] ^ 0xFF]) + data[-7:], id="bad-crc"),
        pytest.param(lambda data: data[:-8], id="no-trailer"),
        pytest.param(lambda data: data[:-4] + b"\xff\xff\xff\x0f", id="bad-length"),
    ],
)
def test_open_layer_checks_the_gzip_trailer(root, damage):
    with pytest.raises(LayerError, match=LAYER):
        apply_file(root, damage(gzip.compress(complete())), "gzip")


@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_data_after_the_end_of_archive_is_refused(root, kind):
    smuggled = complete() + tar_bytes(entry("etc/smuggled", "file", b"x"))
    with pytest.raises(LayerError, match="data after its end-of-archive blocks"):
        apply_file(root, compress(smuggled, kind))
    with pytest.raises(LayerError, match="data after its end-of-archive blocks"):
        LayerApplier(str(root)).apply(stream(smuggled), LAYER)
    assert not (root / "etc").exists()


def test_padding_after_the_end_of_archive_is_accepted_but_bounded(root):
    apply_file(root, complete() + bytes(1024 * 1024))
    with pytest.raises(LayerError, match="bytes after its end-of-archive blocks"):
        apply_file(root, gzip.compress(complete() + bytes(_layers._TAIL_LIMIT + 1024 * 1024)))


def test_open_layer_names_the_layer_for_garbage(root):
    with pytest.raises(LayerError, match=LAYER):
        apply_file(root, b"\x1f\x8b" + b"not gzip at all" * 100)
    with pytest.raises(LayerError, match=LAYER):
        apply_file(root, b"")


def test_a_later_file_where_a_device_was_skipped_can_be_linked(root):
    applier = LayerApplier(str(root), rootless=False)
    apply(applier, entry("dev", "dir"), entry("dev/null", "chr"))
    apply(applier, entry("dev/null", "file", b"now a file"), entry("dev/link", "link", target="dev/null"))
    assert applier.skipped == ["dev/null"] and os.stat(root / "dev/link").st_ino == os.stat(root / "dev/null").st_ino
