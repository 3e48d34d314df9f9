"""volt_image against hostile input: corrupt and truncated tarballs, registries that redirect
blobs elsewhere, serve digests that are paths, malformed manifests or decompression bombs, and
image names that differ only in separators. Every case runs the real module against real HTTP
servers on 127.0.0.1 and checks that the store is left as it was."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest

from .conftest import (
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    digest,
    fake_pull_args,
    rootfs_tarball,
    tar_bytes,
)


def store_lines(target) -> list[str]:
    """The image trees and the index: what a failed run must not touch."""
    return [line for line in target.snapshot().splitlines() if "/images/" in line]


def fails_cleanly(result: dict, *needles: str) -> str:
    assert result.get("failed"), result
    message = result.get("msg", "")
    assert "Traceback" not in message and "MODULE FAILURE" not in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


# -- 1. the user's file is never deleted ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["not-a-tarball", "half-a-tarball"])
def test_a_corrupt_local_tarball_is_left_as_it_was(target, tmp_path, kind):
    body = b"no tar here\n" * 1000 if kind == "not-a-tarball" else rootfs_tarball()[:20000]
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(body)
    before = store_lines(target)
    fails_cleanly(target.volt("volt_image", name="corrupt", path=str(tarball)), str(tarball))
    assert tarball.read_bytes() == body, "the user's tarball was deleted or changed"
    assert store_lines(target) == before


# -- 2. credentials stay with the registry's origin -----------------------------------------------


def _redirected_image(registry, cdn, repo: str = "app") -> str:
    """An image whose only layer the registry redirects to the CDN; the layer's digest."""
    layer = tar_bytes({"etc/os-release": b'PRETTY_NAME="redirected"\n'})
    registry.image(repo, "latest", [layer])
    cdn.add(f"/cdn/{digest(layer)}", layer)
    registry.redirect(f"/v2/{repo}/blobs/{digest(layer)}", f"{cdn.url}/cdn/{digest(layer)}")
    return digest(layer)


def _authorization(headers: list[dict]) -> list[str]:
    return [value for seen in headers for key, value in seen.items() if key.lower() == "authorization"]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_credentials_are_not_sent_where_the_registry_redirects_blobs(target, fake_registries, auth):
    registry, cdn = fake_registries(auth=auth), fake_registries()
    _redirected_image(registry, cdn)
    pulled = target.volt("volt_image", name="redirected", **fake_pull_args(registry, "app"))
    assert not pulled.get("failed"), pulled.get("msg")
    assert open(os.path.join(pulled["image"]["path"], "etc/os-release")).read() == 'PRETTY_NAME="redirected"\n'
    assert cdn.headers_seen("/cdn/"), "the blob did not come from the CDN"
    assert _authorization(cdn.headers_seen()) == [], "the registry's credentials reached another origin"
    assert _authorization(registry.headers_seen("/v2/app/")), "the registry itself got no credentials"


def test_a_redirect_within_the_registry_keeps_the_credentials(target, fake_registries):
    registry = fake_registries(auth="basic")
    layer = tar_bytes({"etc/os-release": b'PRETTY_NAME="moved"\n'})
    registry.image("app", "latest", [layer])
    registry.add(f"/v2/moved/{digest(layer)}", layer)
    registry.redirect(f"/v2/app/blobs/{digest(layer)}", f"/v2/moved/{digest(layer)}", status=302)
    pulled = target.volt("volt_image", name="moved", **fake_pull_args(registry, "app"))
    assert not pulled.get("failed"), pulled.get("msg")
    assert _authorization(registry.headers_seen("/v2/moved/"))


def test_an_https_to_http_redirect_is_refused(target, fake_registries, loopback_tls):
    registry, cdn = fake_registries(auth="basic", tls=True), fake_registries()
    layer_digest = _redirected_image(registry, cdn)
    before = store_lines(target)
    result = target.volt("volt_image", name="downgraded", **fake_pull_args(registry, "app", ca=loopback_tls[1]))
    fails_cleanly(result, f"{cdn.url}/cdn/{layer_digest}", "plain HTTP")
    assert cdn.seen == [], "the downgraded URL was requested"
    assert store_lines(target) == before


def test_a_redirect_loop_ends_with_a_clear_error(target, fake_registries):
    registry = fake_registries()
    layer = tar_bytes({"a": b"a"})
    registry.image("app", "latest", [layer])
    registry.redirect(f"/v2/app/blobs/{digest(layer)}", f"/v2/app/blobs/{digest(layer)}")
    fails_cleanly(target.volt("volt_image", name="loop", **fake_pull_args(registry, "app")), "redirects")


# -- 3. digests are names the store checks, never paths -------------------------------------------


@pytest.mark.parametrize("where", ["absolute", "climbing", "config"])
def test_a_digest_that_is_a_path_is_refused_and_the_file_there_is_not_used(target, fake_registries, tmp_path, where):
    planted = tmp_path / "planted" / "layer.tar.gz"
    planted.parent.mkdir()
    planted.write_bytes(tar_bytes({"pwned": b"a host file became a layer\n"}))
    original = planted.read_bytes()
    climbing = "../" * 30 + str(planted).lstrip("/")
    hostile = f"sha256:{planted}" if where == "absolute" else f"sha256:{climbing}"
    registry = fake_registries()
    manifest = registry.image("app", "latest", [tar_bytes({"a": b"a"})])
    if where == "config":
        manifest["config"]["digest"] = hostile
        manifest["layers"] = [{"mediaType": OCI_LAYER_GZIP, "digest": digest(original), "size": len(original)}]
    else:
        manifest["layers"] = [{"mediaType": OCI_LAYER_GZIP, "digest": hostile, "size": len(original)}]
    registry.manifest("app", "latest", manifest)
    before = store_lines(target)
    result = target.volt("volt_image", name="planted", **fake_pull_args(registry, "app"))
    fails_cleanly(result, repr(hostile))
    assert store_lines(target) == before
    assert planted.read_bytes() == original
    assert not registry.headers_seen("/v2/app/blobs/"), "a blob was requested before the manifest was checked"


def test_a_tampered_cached_blob_is_not_used(target, fake_registries):
    """A cached blob is hashed again before use: a file swapped into the blob store is refused
    (and fetched anew), not unpacked."""
    registry = fake_registries()
    layer = tar_bytes({"etc/os-release": b'PRETTY_NAME="genuine"\n'})
    registry.image("app", "latest", [layer])
    first = target.volt("volt_image", name="cached", **fake_pull_args(registry, "app"))
    assert not first.get("failed"), first.get("msg")
    blob = os.path.join(target.data_dir, "blobs", "sha256", digest(layer).split(":")[1])
    with open(blob, "wb") as handle:
        handle.write(tar_bytes({"etc/os-release": b'PRETTY_NAME="swapped"\n'}))
    again = target.volt("volt_image", name="cached", force=True, **fake_pull_args(registry, "app"))
    assert not again.get("failed"), again.get("msg")
    assert again["layers"][0]["cached"] is False
    assert open(os.path.join(again["image"]["path"], "etc/os-release")).read() == 'PRETTY_NAME="genuine"\n'


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ("sha512:" + "a" * 128, "sha512"),
        ("sha256:" + "A" * 64, "sha256:" + "A" * 64),
        ("sha256:" + "a" * 63, "sha256:" + "a" * 63),
        ("sha256:" + "a" * 64 + "\n", "sha256:"),
        (42, "42"),
    ],
)
def test_malformed_layer_digests_are_named(target, fake_registries, bad, needle):
    registry = fake_registries()
    manifest = registry.image("app", "latest", [tar_bytes({"a": b"a"})])
    manifest["layers"][0]["digest"] = bad
    registry.manifest("app", "latest", manifest)
    fails_cleanly(target.volt("volt_image", name="baddigest", **fake_pull_args(registry, "app")), needle)


def test_an_index_entry_whose_digest_is_a_path_is_refused(target, fake_registries):
    registry = fake_registries()
    registry.image("app", "inner", [tar_bytes({"a": b"a"})])
    hostile = "sha256:../../../../etc/passwd"
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": hostile, "size": 10, "platform": p}
            for p in ({"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"})
        ],
    }
    registry.manifest("app", "latest", index, OCI_INDEX)
    result = target.volt("volt_image", name="idx", **fake_pull_args(registry, "app", platform="linux/arm64"))
    fails_cleanly(result, repr(hostile))


# -- 4. malformed manifests are clear errors, not tracebacks --------------------------------------


def _mutate(manifest: dict, case: str):
    layer = manifest["layers"][0]
    if case.startswith("size="):
        layer["size"] = {"str": "12", "negative": -1, "bool": True, "float": 1.5, "none": None}[case[5:]]
    elif case == "layer-not-a-mapping":
        manifest["layers"] = ["sha256:" + "a" * 64]
    elif case == "layers-not-a-list":
        manifest["layers"] = {"0": layer}
    elif case == "config-not-a-mapping":
        manifest["config"] = "none"
    elif case == "unknown-media-type":
        manifest["mediaType"] = "application/vnd.example.unknown+json"
    elif case == "layer-media-type":
        layer["mediaType"] = "application/x-evil"
    return manifest


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("size=str", "'12'"),
        ("size=negative", "-1"),
        ("size=bool", "True"),
        ("size=float", "1.5"),
        ("size=none", "None"),
        ("layer-not-a-mapping", "'sha256:aaaa"),
        ("layers-not-a-list", "layers"),
        ("config-not-a-mapping", "'none'"),
        ("unknown-media-type", "application/vnd.example.unknown+json"),
        ("layer-media-type", "application/x-evil"),
    ],
)
def test_malformed_manifests_fail_with_the_bad_value_named(target, fake_registries, case, needle):
    registry = fake_registries()
    manifest = _mutate(registry.image("app", "latest", [tar_bytes({"a": b"a"})]), case)
    registry.manifest("app", "latest", manifest)
    before = store_lines(target)
    fails_cleanly(target.volt("volt_image", name="malformed", **fake_pull_args(registry, "app")), needle)
    assert store_lines(target) == before


@pytest.mark.parametrize(
    ("body", "media_type", "needle"),
    [
        (b"[1, 2]", OCI_MANIFEST, "not a JSON object"),
        (b'"manifest"', OCI_MANIFEST, "not a JSON object"),
        (b"null", OCI_MANIFEST, "not a JSON object"),
        (b'{"schemaVersion": 2, "manifests": {"a": 1}}', OCI_INDEX, "manifests"),
        (b'{"schemaVersion": 2, "manifests": ["x"]}', OCI_INDEX, "'x'"),
        (
            b'{"schemaVersion": 2, "manifests": [{"digest": "sha256:%s", "platform": "linux"}]}' % (b"a" * 64),
            OCI_INDEX,
            "'linux'",
        ),
        (b'{"schemaVersion": 2}', "application/json", "neither"),
    ],
)
def test_malformed_documents_fail_with_the_bad_value_named(target, fake_registries, body, media_type, needle):
    registry = fake_registries()
    registry.manifest("app", "latest", body, media_type)
    fails_cleanly(target.volt("volt_image", name="malformed", **fake_pull_args(registry, "app")), needle)


# -- 5. names that differ only in separators are different images ---------------------------------


def test_names_that_differ_only_in_separators_are_different_images(target, tmp_path):
    names = ["team/app", "team_app", "team:app", "team@app"]
    paths = {}
    for name in names:
        tarball = tmp_path / f"{len(paths)}.tar.gz"
        tarball.write_bytes(rootfs_tarball(("./etc/image-name", name.encode())))
        result = target.volt("volt_image", name=name, path=str(tarball))
        assert not result.get("failed"), result.get("msg")
        paths[name] = result["image"]["path"]
    assert len(set(paths.values())) == len(names), paths
    for name, path in paths.items():
        assert open(os.path.join(path, "etc/image-name")).read() == name
    removed = target.volt("volt_image", name="team_app", state="absent")
    assert removed["changed"] is True and not os.path.exists(paths["team_app"])
    for name in ("team/app", "team:app", "team@app"):
        kept = target.volt("volt_image", name=name, path=str(tmp_path / f"{names.index(name)}.tar.gz"))
        assert kept["changed"] is False, name
        assert open(os.path.join(paths[name], "etc/image-name")).read() == name
    started = target.volt(name="c1", image="team:app", command=["sleep", "1000"])
    assert not started.get("failed"), started.get("msg")
    assert open(os.path.join(target.rootfs("c1"), "etc/image-name")).read() == "team:app"


# -- 6. truncated tarballs never become images ----------------------------------------------------


def _plain_tar() -> tuple[bytes, int, int]:
    """An uncompressed rootfs tar; the offset where its end-of-archive blocks start, and an offset
    in the middle of its largest member's data."""
    body = gzip.decompress(rootfs_tarball(("./etc/big", os.urandom(300_000))))
    end = middle = 0
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as archive:
        for member in archive:
            end = member.offset_data + -(-member.size // 512) * 512
            if member.name == "./etc/big":
                middle = member.offset_data + member.size // 2
    return body, end, middle


def _truncated(kind: str) -> bytes:  # noqa: PLR0911 - one case per return
    body, end, middle = _plain_tar()
    assert body[end : end + 1024] == b"\0" * 1024
    if kind == "tar-cut-in-a-member":
        return body[:middle]
    if kind == "tar-cut-at-a-member-boundary":
        return body[:end]
    if kind == "tar-cut-in-the-end-blocks":
        return body[: end + 512]
    if kind == "gzip-of-a-tar-cut-at-a-member-boundary":
        return gzip.compress(body[:end])
    if kind == "gzip-cut-in-the-middle":
        whole = gzip.compress(body)
        return whole[: len(whole) // 2]
    if kind == "gzip-with-a-bad-crc":
        whole = bytearray(gzip.compress(body))
        whole[-8] ^= 0xFF  # the CRC32 of the trailer
        return bytes(whole)
    if kind == "gzip-without-its-trailer":
        return gzip.compress(body)[:-8]
    if kind == "data-after-the-end":
        return body + tar_bytes({"etc/smuggled": b"x"}, compress=False)
    raise AssertionError(kind)


TRUNCATIONS = [
    "tar-cut-in-a-member",
    "tar-cut-at-a-member-boundary",
    "tar-cut-in-the-end-blocks",
    "gzip-of-a-tar-cut-at-a-member-boundary",
    "gzip-cut-in-the-middle",
    "gzip-with-a-bad-crc",
    "gzip-without-its-trailer",
    "data-after-the-end",
]


@pytest.mark.parametrize("kind", TRUNCATIONS)
def test_a_truncated_tarball_does_not_become_an_image(target, tmp_path, kind):
    tarball = tmp_path / "cut.tar"
    tarball.write_bytes(_truncated(kind))
    before = store_lines(target)
    fails_cleanly(target.volt("volt_image", name="cut", path=str(tarball)), str(tarball))
    assert store_lines(target) == before
    assert not os.path.exists(os.path.join(target.data_dir, "images", "cut"))


def test_a_complete_uncompressed_tarball_still_works(target, tmp_path):
    body, _end, _middle = _plain_tar()
    tarball = tmp_path / "whole.tar"
    tarball.write_bytes(body)
    result = target.volt("volt_image", name="whole", path=str(tarball))
    assert not result.get("failed"), result.get("msg")


@pytest.mark.parametrize("kind", ["tar-cut-at-a-member-boundary", "gzip-with-a-bad-crc"])
def test_a_truncated_layer_does_not_become_an_image(target, fake_registries, kind):
    registry = fake_registries()
    layer = _truncated(kind)
    if not kind.startswith("gzip"):
        layer = gzip.compress(layer)  # a complete gzip stream of an incomplete tar
    registry.image("app", "latest", [layer])
    before = store_lines(target)
    fails_cleanly(target.volt("volt_image", name="cutlayer", **fake_pull_args(registry, "app")), digest(layer))
    assert store_lines(target) == before


# -- 7. decompression is bounded ------------------------------------------------------------------


def test_a_tarball_bigger_than_max_size_is_refused(target, tmp_path):
    tarball = tmp_path / "bomb.tar.gz"
    tarball.write_bytes(rootfs_tarball(("./zeros", b"\0" * (4 * 1024 * 1024))))
    assert tarball.stat().st_size < 1024 * 1024
    before = store_lines(target)
    result = target.volt("volt_image", name="bomb", path=str(tarball), max_size="1M")
    fails_cleanly(result, "max_size", "1M")
    assert store_lines(target) == before
    fits = target.volt("volt_image", name="bomb", path=str(tarball), max_size="64M")
    assert not fits.get("failed"), fits.get("msg")


def test_a_layer_bomb_is_refused(target, fake_registries):
    registry = fake_registries()
    registry.image("app", "latest", [tar_bytes({"zeros": b"\0" * (4 * 1024 * 1024)})])
    before = store_lines(target)
    result = target.volt("volt_image", name="bomb", max_size=1024 * 1024, **fake_pull_args(registry, "app"))
    fails_cleanly(result, "exceeds max_size")
    assert store_lines(target) == before


def test_layers_declared_bigger_than_max_size_are_not_downloaded(target, fake_registries):
    registry = fake_registries()
    registry.image("app", "latest", [os.urandom(300_000)])
    result = target.volt("volt_image", name="big", max_size="100K", **fake_pull_args(registry, "app"))
    fails_cleanly(result, "exceeds max_size")
    assert not registry.headers_seen("/v2/app/blobs/")


@pytest.mark.parametrize("bad", ["lots", "-1", "0", "1.5G", "12Q"])
def test_a_bad_max_size_is_named(target, tmp_path, bad):
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(rootfs_tarball())
    fails_cleanly(target.volt("volt_image", name="x", path=str(tarball), max_size=bad), repr(bad))
