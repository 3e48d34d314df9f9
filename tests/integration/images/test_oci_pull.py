"""volt_image pulls from real registries on 127.0.0.1 (tests/setup/registry/registry): plain HTTP,
HTTPS with a test CA, basic auth and bearer tokens. Unpacked trees are compared with what
umoci produces for the same image; malicious images must fail and leave the store unchanged."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess

import pytest

from ..conftest import TOP
from . import oci_images

SCRIPT = os.path.join(TOP, "tests", "setup", "registry", "registry")
EVIL = [
    "dotdot",
    "absolute",
    "symlink-escape",
    "symlink-escape-layers",
    "hardlink-escape",
    "bad-digest",
    "size-bigger",
    "size-smaller",
]


@pytest.fixture(scope="session")
def registries(tmp_path_factory):
    """Start the registries (unless already running), push every test image to each."""
    state = os.environ.get("VOLT_REGISTRY_DIR", "/var/tmp/volt-registry")
    started = subprocess.run([SCRIPT, "start", "--dir", state], capture_output=True, text=True, check=True).stdout
    env = dict(os.environ)
    for line in started.splitlines():
        if line.startswith("export "):
            key, _sep, value = line[len("export ") :].partition("=")
            env[key] = value.strip("'\"")
    found = oci_images.registries(env)
    built = oci_images.build_all(tmp_path_factory.mktemp("oci-build"))
    pushed = {kind: oci_images.push_all(registry, built=built) for kind, registry in found.items()}
    yield found, pushed
    if "VOLT_REGISTRY_KEEP" not in os.environ:
        subprocess.run([SCRIPT, "stop", "--dir", state], check=False, capture_output=True)


def pull_args(registry, repo, tag="latest", **extra):
    args = {"reference": registry.ref(repo, tag), "validate_certs": registry.tls}
    if registry.tls:
        args["ca_path"] = registry.ca
    if registry.needs_credentials:
        args.update(username=registry.username, password=registry.password)
    args.update(extra)
    return args


@pytest.mark.parametrize(("kind", "tag"), [("http", "latest"), ("https", "latest"), ("https", "v2s2")])
def test_pull_matches_umoci_and_is_idempotent(target, registries, tmp_path, kind, tag):
    found, _pushed = registries
    registry = found[kind]
    args = pull_args(registry, "multilayer", tag)
    before = target.snapshot()
    predicted = target.volt("volt_image", check=True, name="ml", **args)
    assert predicted["changed"] is True and predicted["actions"] == ["pull"] and target.snapshot() == before
    pulled = target.volt("volt_image", name="ml", **args)
    assert not pulled.get("failed"), pulled.get("msg")
    assert pulled["changed"] is True and len(pulled["layers"]) == 4
    assert all(layer["cached"] is False for layer in pulled["layers"])

    again = target.volt("volt_image", name="ml", **args)
    assert again["changed"] is False and again["requests"] <= 2  # one manifest request (+ a 401 challenge)
    assert target.volt("volt_image", check=True, name="ml", **args)["changed"] is False

    expected = oci_images.umoci_unpack(registry, "multilayer", tag, tmp_path / "umoci")
    ours = oci_images.tree_listing(pulled["image"]["path"])
    theirs = oci_images.tree_listing(expected)
    assert oci_images.diff_listings(ours, theirs) == []


def test_shared_layers_are_downloaded_once(target, registries):
    found, _pushed = registries
    registry = found["https"]
    first = target.volt("volt_image", name="ml", **pull_args(registry, "multilayer"))
    assert not first.get("failed"), first.get("msg")
    second = target.volt("volt_image", name="ml-docker", **pull_args(registry, "multilayer", "v2s2"))
    assert all(layer["cached"] for layer in second["layers"]), second["layers"]


def test_multiarch_picks_the_platform(target, registries):
    found, _pushed = registries
    registry = found["http"]
    for platform, arch in (("linux/arm64", "arm64"), ("linux/arm/v7", "arm"), ("linux/amd64", "amd64")):
        result = target.volt("volt_image", name=f"ma-{arch}", platform=platform, **pull_args(registry, "multiarch"))
        assert not result.get("failed"), result.get("msg")
        assert open(os.path.join(result["image"]["path"], "arch")).read().strip().startswith(arch)
    missing = target.volt("volt_image", name="ma-s390x", platform="linux/s390x", **pull_args(registry, "multiarch"))
    assert missing.get("failed") and "has no image for linux/s390x" in missing["msg"]


@pytest.mark.parametrize("kind", ["auth", "token"])
def test_private_images_need_credentials(target, registries, kind):
    found, _pushed = registries
    if kind not in found:
        pytest.fail(f"the {kind} registry is not running")
    registry = found[kind]
    pulled = target.volt("volt_image", name="private", **pull_args(registry, "private/app"))
    assert not pulled.get("failed"), pulled.get("msg")
    assert pulled["changed"] is True
    anonymous = pull_args(registry, "private/app")
    anonymous.pop("username")
    anonymous.pop("password")
    refused = target.volt("volt_image", name="private2", **anonymous)
    assert refused.get("failed") and ("credentials" in refused["msg"] or "401" in refused["msg"])
    wrong = dict(pull_args(registry, "private/app"), password="wrong")
    assert target.volt("volt_image", name="private3", **wrong).get("failed")
    assert "s3cret-Pass" not in str(pulled) and "s3cret-Pass" not in str(refused)


def test_https_without_the_ca_is_refused(target, registries):
    found, _pushed = registries
    args = pull_args(found["https"], "multilayer")
    args.pop("ca_path")
    result = target.volt("volt_image", name="untrusted", **args)
    assert result.get("failed") and "CERTIFICATE_VERIFY_FAILED" in result["msg"]


def test_malicious_images_fail_clearly_and_leave_the_store_unchanged(target, registries, tmp_path):
    found, _pushed = registries
    registry = found["http"]
    target.volt("volt_image", name="victim", **pull_args(registry, "multilayer"))
    before = target.snapshot()
    messages = {}
    for tag in EVIL:
        result = target.volt("volt_image", name="victim", force=True, **pull_args(registry, "evil", tag))
        assert result.get("failed"), tag
        messages[tag] = result["msg"]
    assert "climbs out with '..'" in messages["dotdot"]
    assert "is an absolute path" in messages["absolute"]
    assert "goes through the symlink 'link'" in messages["symlink-escape"]
    assert "goes through the symlink 'link'" in messages["symlink-escape-layers"]
    assert "climbs out" in messages["hardlink-escape"]
    assert "arrived with digest" in messages["bad-digest"]
    assert "larger than" in messages["size-smaller"] or "bytes, not the" in messages["size-smaller"]
    assert "bytes, not the" in messages["size-bigger"]
    after = target.snapshot()
    tree_lines = [line for line in before.splitlines() if "/images/" in line]
    assert [line for line in after.splitlines() if "/images/" in line] == tree_lines, "the image was touched"
    assert oci_images.find_escapes(tmp_path, target.data_dir) == []


def test_zstd_layers_unpack_with_pythons_or_the_programs_decoder_and_fail_cleanly_without(
    target, registries, monkeypatch, tmp_path
):
    """multilayer:zstd is multilayer with zstd layers. With neither Python >= 3.14 nor the zstd
    program the pull must be refused before anything is downloaded; with a decoder the tree must
    equal the gzip image's."""
    found, pushed = registries
    registry = found["http"]
    zstd_manifest = pushed["http"]["multilayer:zstd"].manifest
    assert {layer["mediaType"] for layer in zstd_manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+zstd"}
    python_reads_zstd = bool(importlib.util.find_spec("compression") and importlib.util.find_spec("compression.zstd"))
    args = pull_args(registry, "multilayer", "zstd")
    if not python_reads_zstd:
        before = target.snapshot()
        without_zstd = tmp_path / "bin"
        without_zstd.mkdir()
        for program in os.listdir("/usr/bin"):
            if "zstd" not in program:
                os.symlink(os.path.join("/usr/bin", program), without_zstd / program)
        with monkeypatch.context() as hidden:
            hidden.setenv("PATH", str(without_zstd))  # every program but zstd
            refused = target.volt("volt_image", name="zst", **args)
        assert refused.get("failed") and "is zstd-compressed" in refused["msg"], refused.get("msg")
        assert "Python 3.14" in refused["msg"] and "zstd program" in refused["msg"]
        assert zstd_manifest["layers"][0]["digest"] in refused["msg"]
        assert target.snapshot() == before  # no blob downloaded, no tree, no index entry
    assert python_reads_zstd or shutil.which("zstd"), "the test set-up installs the zstd program"
    pulled = target.volt("volt_image", name="zst", **args)
    assert not pulled.get("failed"), pulled.get("msg")
    gzip_image = target.volt("volt_image", name="gz", **pull_args(registry, "multilayer"))
    ours = oci_images.tree_listing(pulled["image"]["path"])
    assert oci_images.diff_listings(ours, oci_images.tree_listing(gzip_image["image"]["path"])) == []
    assert target.volt("volt_image", name="zst", **args)["changed"] is False
    blobs = os.listdir(os.path.join(target.data_dir, "blobs", "sha256"))
    assert not [name for name in blobs if name.startswith(".")], "a decompressed copy was left behind"
