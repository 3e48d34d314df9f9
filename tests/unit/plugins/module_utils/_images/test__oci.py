from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._oci import (
    Reference,
    _choose,
    _Failure,
    parse_platform,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("debian", "registry-1.docker.io/library/debian:latest"),
        ("debian:bookworm", "registry-1.docker.io/library/debian:bookworm"),
        ("team/app:1", "registry-1.docker.io/team/app:1"),
        ("127.0.0.1:5000/evil:dotdot", "127.0.0.1:5000/evil:dotdot"),
        ("localhost/app", "localhost/app:latest"),
        ("quay.io/org/sub/app@" + DIGEST, "quay.io/org/sub/app@" + DIGEST),
        ("ghcr.io/o/app:v1@" + DIGEST, "ghcr.io/o/app:v1@" + DIGEST),
    ],
)
def test_references_take_docker_defaults(text, expected):
    assert str(Reference(text)) == expected


@pytest.mark.parametrize("bad", ["", "UPPER/case", "app:", "app@sha256:short", "a b", "../x", "app:tag:extra"])
def test_bad_references_are_named(bad):
    with pytest.raises(VoltError, match="reference"):
        Reference(bad)


def index(*platforms):
    return [
        {"digest": f"sha256:{i}", "platform": dict(zip(("os", "architecture", "variant"), p))}
        for i, p in enumerate(platforms)
    ]


def test_platform_choice():
    manifests = index(("linux", "amd64"), ("linux", "arm64"), ("linux", "arm", "v7"), ("windows", "amd64"))
    assert _choose(manifests, ("linux", "arm64", ""), "r")["digest"] == "sha256:1"
    assert _choose(manifests, ("linux", "arm", "v7"), "r")["digest"] == "sha256:2"
    with pytest.raises(VoltError, match=r"has no image for linux/s390x .*linux/amd64, linux/arm/v7, linux/arm64"):
        _choose(manifests, ("linux", "s390x", ""), "r")
    assert parse_platform("linux/arm/v7") == ("linux", "arm", "v7")
    with pytest.raises(VoltError, match="platform 'amd64'"):
        parse_platform("amd64")


def test_tls_against_a_plain_http_registry_hints_at_validate_certs():
    error = _Failure("https://127.0.0.1:5000/v2/", OSError("[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    assert "validate_certs: false" in error.volt_error("GET").msg
    other = _Failure("https://127.0.0.1:5000/v2/", OSError("Connection refused"))
    assert "validate_certs" not in other.volt_error("GET").msg
