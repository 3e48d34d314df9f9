"""volt_image with directory and tarball sources, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import os
import tarfile

from .conftest import digest, rootfs_tarball


def sequence(target, **args):
    """check predicts a change and writes nothing -> apply -> check and apply change nothing."""
    before = target.snapshot()
    predicted = target.volt("volt_image", check=True, **args)
    assert not predicted.get("failed"), predicted.get("msg")
    assert predicted["changed"] is True and target.snapshot() == before
    applied = target.volt("volt_image", **args)
    assert not applied.get("failed"), applied.get("msg")
    assert applied["changed"] is True and applied["actions"] == predicted["actions"]
    assert target.volt("volt_image", check=True, **args)["changed"] is False
    before = target.snapshot()
    assert target.volt("volt_image", **args)["changed"] is False
    assert target.snapshot() == before
    return applied


def test_directory_image_runs_a_container(target):
    source = f"{target.data_dir}/images/busybox"
    image = sequence(target, name="copied", path=source)["image"]
    assert image["source"] == "directory" and image["path"].endswith("/images/copied")
    assert os.path.isfile(f"{image['path']}/bin/busybox") and image["size"] > 0
    started = target.volt(name="c1", image="copied", command=["sleep", "1000"])
    assert started["container"]["status"] == "running"


def test_local_tarball(target, tmp_path):
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(rootfs_tarball())
    image = sequence(target, name="debian:local", path=str(tarball))["image"]
    assert image["digest"] == digest(tarball.read_bytes()) and image["os"] == "Volt tarball"
    assert image["path"].endswith("/images/debian%3Alocal")
    assert os.readlink(f"{image['path']}/bin/sh") == "busybox"
    # A different tarball under the same name replaces the image.
    tarball.write_bytes(rootfs_tarball(("./etc/version", b"2\n")))
    changed = target.volt("volt_image", name="debian:local", path=str(tarball))
    assert changed["changed"] is True and changed["image"]["digest"] == digest(tarball.read_bytes())
    assert open(f"{image['path']}/etc/version").read() == "2\n"


def test_a_new_image_digest_is_drift_for_its_containers(target, tmp_path):
    tarball = tmp_path / "rootfs.tar.gz"
    tarball.write_bytes(rootfs_tarball())
    target.volt("volt_image", name="app", path=str(tarball))
    args = {"name": "app1", "image": "app", "command": ["sleep", "1000"]}
    first = target.volt(**args)
    assert first["container"]["config"]["image_digest"] == digest(tarball.read_bytes())
    assert target.volt(**args)["changed"] is False
    tarball.write_bytes(rootfs_tarball(("./etc/version", b"2\n")))
    target.volt("volt_image", name="app", path=str(tarball))
    again = target.volt(**args)
    assert again["changed"] is True and again["drifted"] == ["image_digest"]
    assert again["actions"] == ["remove", "create", "start"]
    assert open(os.path.join(target.rootfs("app1"), "etc/version")).read() == "2\n"
    assert target.volt(**args)["changed"] is False


def test_url_with_checksum_downloads_once(target, http_server):
    body = rootfs_tarball()
    url = http_server.add("/rootfs.tar.gz", body)
    image = sequence(target, name="web", url=url, checksum=digest(body))["image"]
    assert image["digest"] == digest(body) and image["url"] == url
    assert http_server.requests == ["/rootfs.tar.gz"], "one download; later runs compare digests only"
    assert os.path.isfile(os.path.join(target.data_dir, "blobs", "sha256", digest(body).split(":")[1]))


def test_bad_downloads_fail_clearly_and_leave_the_store_as_it_was(target, http_server, tmp_path):
    body = rootfs_tarball()
    good = http_server.add("/good.tar.gz", body)
    truncated = http_server.add("/truncated.tar.gz", body[: len(body) // 2], declared=len(body))
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w:gz") as archive:
        info = tarfile.TarInfo("../escape")
        archive.addfile(info, io.BytesIO(b""))
    evil_url = http_server.add("/evil.tar.gz", evil.getvalue())
    before = target.snapshot()
    cases = [
        ({"url": good, "checksum": "sha256:" + "0" * 64}, "not the expected sha256:000"),
        ({"url": good}, "needs a checksum"),
        ({"url": good, "checksum": "md5:abc"}, "must look like sha256:<64 hex digits>"),
        ({"url": truncated, "checksum": digest(body)}, "truncated"),
        ({"url": evil_url, "checksum": digest(evil.getvalue())}, "climbs out with '..'"),
        ({"url": http_server.url + "/missing.tar.gz", "checksum": digest(body)}, "404"),
        ({"path": str(tmp_path / "nope.tar")}, "nope.tar"),
        ({"path": "relative/dir"}, "must be an absolute path"),
    ]
    for args, message in cases:
        result = target.volt("volt_image", name="bad", **args)
        assert result.get("failed"), args
        assert message in result["msg"], (args, result["msg"])
        assert not os.path.exists(os.path.join(target.data_dir, "images", "bad"))
    # No tree, no blob, no index entry: only the empty blob directory and the lock may appear.
    paths_before = {line.split()[0] for line in before.splitlines()}
    added = {line.split()[0] for line in target.snapshot().splitlines()} - paths_before
    assert {os.path.relpath(path, target.data_dir) for path in added} <= {
        "blobs",
        "blobs/sha256",
        "locks",
        "locks/images.lock",
    }


def test_absent_is_refused_while_a_container_uses_the_image(target):
    target.volt("volt_image", name="used", path=f"{target.data_dir}/images/busybox")
    target.volt(name="user", image="used", command=["sleep", "1000"])
    refused = target.volt("volt_image", name="used", state="absent")
    assert refused.get("failed") and "used by containers user" in refused["msg"]
    assert os.path.isdir(f"{target.data_dir}/images/used")
    removed = target.volt("volt_image", name="used", state="absent", force=True)
    assert removed["changed"] is True and not os.path.exists(f"{target.data_dir}/images/used")
    assert target.volt("volt_image", name="used", state="absent")["changed"] is False


def test_a_directory_image_follows_its_source_and_diffs_show_it(target, tmp_path):
    source = tmp_path / "tree"
    os.makedirs(source / "etc")
    (source / "etc" / "version").write_text("1\n")
    first = sequence(target, name="followed", path=str(source))
    assert first["diff"]["before"] == {"state": "absent"}
    assert first["diff"]["after"]["source"] == "directory" and first["diff"]["after"]["tree"].startswith("sha256:")
    (source / "etc" / "version").write_text("22\n")  # the source changed: present copies it again
    predicted = target.volt("volt_image", check=True, diff=True, name="followed", path=str(source))
    assert predicted["changed"] is True and predicted["actions"] == ["copy"]
    assert predicted["diff"]["before"]["tree"] != predicted["diff"]["after"]["tree"]
    changed = target.volt("volt_image", name="followed", path=str(source))
    assert changed["changed"] is True
    assert open(os.path.join(changed["image"]["path"], "etc", "version")).read() == "22\n"
    assert target.volt("volt_image", name="followed", path=str(source))["changed"] is False


def test_a_container_tree_becomes_an_image(target):
    """The builder pattern: change a container, take its tree as an image, run the image."""
    target.volt(name="builder", image="busybox", command=["sleep", "1000"])
    made = target.volt("volt_exec", name="builder", argv=["sh", "-c", "echo built > /etc/built-by-builder"])
    assert made["rc"] == 0
    image = sequence(target, name="built", container="builder")["image"]
    assert image["source"] == "container" and image["container"] == "builder"
    assert open(os.path.join(image["path"], "etc", "built-by-builder")).read() == "built\n"
    target.volt("volt_exec", name="builder", argv=["sh", "-c", "echo again >> /etc/built-by-builder"])
    assert target.volt("volt_image", name="built", container="builder")["changed"] is True  # its tree changed
    runs = target.volt(name="fromimage", image="built", command=["sleep", "1000"])
    assert runs["container"]["status"] == "running"
    missing = target.volt("volt_image", name="nothing", container="nosuch")
    assert missing.get("failed") and "container nosuch does not exist in" in missing["msg"]
