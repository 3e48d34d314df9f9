"""What the registry client accepts from a registry: digests, descriptors, documents, redirects."""

from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_store import check_digest
from ansible_collections.armoredgate.volt.plugins.module_utils._images._oci import (
    _kind,
    check_descriptor,
    check_manifest,
    index_entries,
    origin,
    redirect_target,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:../../etc/passwd",
        "sha256:/etc/passwd",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 64 + "\n",
        "sha256:" + "a" * 64 + "/x",
        "md5:" + "a" * 32,
        "",
        None,
        42,
    ],
)
def test_digests_that_are_not_sha256_hex_are_named(bad):
    with pytest.raises(VoltError) as info:
        check_digest(bad, "layer digest")
    assert repr(bad) in info.value.msg


def test_other_algorithms_are_refused_by_name():
    with pytest.raises(VoltError, match="uses sha512: only sha256"):
        check_digest("sha512:" + "b" * 128)
    assert check_digest(DIGEST) == DIGEST


@pytest.mark.parametrize(
    ("descriptor", "needle"),
    [
        ("sha256:" + "a" * 64, "not a descriptor"),
        ({"digest": DIGEST, "size": "12"}, "size '12'"),
        ({"digest": DIGEST, "size": -1}, "size -1"),
        ({"digest": DIGEST, "size": True}, "size True"),
        ({"digest": DIGEST, "size": 1.5}, "size 1.5"),
        ({"digest": DIGEST}, "size None"),
        ({"digest": DIGEST, "size": 1, "mediaType": ["x"]}, "media type ['x']"),
        ({"digest": "sha256:../x", "size": 1}, "'sha256:../x'"),
    ],
)
def test_bad_descriptors_are_named(descriptor, needle):
    with pytest.raises(VoltError) as info:
        check_descriptor(descriptor, "layer 1")
    assert needle in info.value.msg


def test_manifests_need_a_config_and_a_list_of_layers():
    good = {"config": {"digest": DIGEST, "size": 2}, "layers": [{"digest": DIGEST, "size": 3}]}
    assert check_manifest(good, "r") is good
    with pytest.raises(VoltError, match=r"layers are \{'a': 1\}, not a list"):
        check_manifest(dict(good, layers={"a": 1}), "r")
    with pytest.raises(VoltError, match="config is None"):
        check_manifest({"layers": []}, "r")


def test_index_entries_are_checked():
    assert index_entries({"manifests": [{"digest": DIGEST, "platform": {"os": "linux"}}]}, "r")
    for bad, needle in (
        ({"manifests": "x"}, "not a list"),
        ({"manifests": [1]}, "index entry 1 is 1"),
        ({"manifests": [{"digest": "sha256:../x"}]}, "'sha256:../x'"),
        ({"manifests": [{"digest": DIGEST, "platform": "linux"}]}, "platform 'linux'"),
    ):
        with pytest.raises(VoltError) as info:
            index_entries(bad, "r")
        assert needle in info.value.msg


def test_document_kinds():
    assert _kind({"manifests": []}, "application/vnd.oci.image.index.v1+json", "r") == "index"
    assert _kind({"layers": []}, "application/json", "r") == "manifest"
    with pytest.raises(VoltError, match="unsupported media type 'application/x-what'"):
        _kind({"mediaType": "application/x-what", "layers": []}, "application/x-what", "r")
    with pytest.raises(VoltError, match="neither"):
        _kind({}, "application/vnd.docker.distribution.manifest.v1+prettyjws", "r")


def test_origins_fill_in_default_ports():
    assert origin("https://Registry.example:443/v2/") == origin("https://registry.example/v2/x")
    assert origin("http://registry.example/v2/") != origin("https://registry.example/v2/")
    assert origin("https://registry.example:5000/") != origin("https://registry.example/")
    assert origin("https://cdn.example/blob") != origin("https://registry.example/blob")


def test_redirects():
    assert redirect_target("https://r.example/v2/a", "/v2/b", 307) == "https://r.example/v2/b"
    assert redirect_target("http://r.example/v2/a", "https://cdn.example/b", 302) == "https://cdn.example/b"
    with pytest.raises(VoltError, match=r"redirects to http://cdn.example/b, plain HTTP"):
        redirect_target("https://r.example/v2/a", "http://cdn.example/b", 302)
    with pytest.raises(VoltError, match="only http and https"):
        redirect_target("https://r.example/v2/a", "file:///etc/passwd", 302)
    with pytest.raises(VoltError, match="without a Location"):
        redirect_target("https://r.example/v2/a", None, 302)
