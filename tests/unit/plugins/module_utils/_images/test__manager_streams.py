"""The image manager's checks of a tar stream (end-of-archive, trailing data, size budget), of
max_size, and the store's re-verification of cached blobs."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_store import ImageStore
from ansible_collections.armoredgate.volt.plugins.module_utils._images._manager import (
    _Budget,
    _TarStream,
    image_diff,
    parse_size,
    tree_signature,
)


def tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def read_all(body: bytes, limit: int = 1 << 30) -> list[str]:
    """What tarfile lists from body through _TarStream, after the stream's own end checks."""
    stream = _TarStream(io.BytesIO(body), _Budget(limit, "1G"), "test.tar")
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        names = [member.name for member in archive]
        stream.finish(archive)
    return names


def test_a_complete_archive_passes():
    assert read_all(tar({"a": b"x" * 700, "b": b""})) == ["a", "b"]


def test_an_archive_cut_at_a_member_boundary_is_truncated():
    body = tar({"a": b"x" * 700})
    end = len(body.rstrip(b"\0"))
    end += -end % 512
    with pytest.raises(VoltError, match="is truncated"):
        read_all(body[:end])
    with pytest.raises(VoltError, match="is truncated"):
        read_all(body[: end + 512])  # one zero block is not the end-of-archive marker


def test_data_after_the_end_is_refused():
    with pytest.raises(VoltError, match="goes on with data"):
        read_all(tar({"a": b"x"}) + tar({"smuggled": b"y"}))


def test_a_cut_header_is_refused():
    body = tar({"a": b"x"})
    with pytest.raises(VoltError, match="goes on with data"):
        read_all(body[:1024] + body[:300])


def test_the_budget_stops_a_bomb():
    with pytest.raises(VoltError, match=r"exceeds max_size \(1G\)"):
        read_all(tar({"zeros": bytes(100_000)}), limit=50_000)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("20G", 20 << 30),
        ("512M", 512 << 20),
        ("1k", 1024),
        ("3 KiB", 3072),
        (4096, 4096),
        ("100", 100),
        (None, 32 << 30),
    ],
)
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "-1", "0", 0, -5, "1.5G", "12Q", True, [1]])
def test_bad_sizes_are_named(bad):
    with pytest.raises(VoltError) as info:
        parse_size(bad)
    assert repr(bad) in info.value.msg


def test_a_cached_blob_is_hashed_again(tmp_path):
    store = ImageStore(str(tmp_path))
    data = b"layer"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert store.verified_blob(digest) is None
    fd, temporary = store.new_blob()
    os.write(fd, data)
    os.close(fd)
    path = store.keep_blob(temporary, digest)
    assert store.verified_blob(digest) == path
    with open(path, "wb") as handle:
        handle.write(b"swapped")
    assert store.verified_blob(digest) is None and not os.path.exists(path)
    os.symlink("/etc/hostname", path)
    assert store.verified_blob(digest) is None and not os.path.lexists(path)
    os.mkfifo(path)
    assert store.verified_blob(digest) is None  # a FIFO is neither read nor waited on


def test_blob_paths_refuse_digests_that_are_paths(tmp_path):
    store = ImageStore(str(tmp_path))
    for bad in ("sha256:../../x", "sha256:/etc/passwd"):
        with pytest.raises(VoltError, match="is not a digest"):
            store.blob(bad)


def test_a_tree_signature_changes_with_the_tree(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "a").write_text("1")
    first = tree_signature(str(tmp_path))
    assert tree_signature(str(tmp_path)) == first
    (tmp_path / "etc" / "a").write_text("22")
    second = tree_signature(str(tmp_path))
    assert second != first
    (tmp_path / "etc" / "b").write_text("")
    assert tree_signature(str(tmp_path)) != second


def test_the_image_diff_shows_source_and_digest():
    before = {"source": "tarball", "path": "/srv/a.tar", "digest": "sha256:" + "a" * 64, "size": 1, "created": "x"}
    after = dict(before, digest="sha256:" + "b" * 64)
    diff = image_diff(before, after)
    assert diff["before"] == {"state": "present", "source": "tarball", "path": "/srv/a.tar", "digest": before["digest"]}
    assert diff["after"]["digest"] == after["digest"]
    assert image_diff(None, None) == {"before": {"state": "absent"}, "after": {"state": "absent"}}
