"""What other local users and readers of results can see of a proot container: private trees,
no setuid programs or device nodes from images, secrets kept out of records, results and diffs.

Attacks are real: another user (nobody) tries to reach the trees, and every file the collection
writes is searched for a secret value."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from ...polling import wait_for

SECRET = "s3cret-Value with spaces"
NEW_SECRET = "an0ther-s3cret"


@pytest.fixture
def open_parent():
    """A directory every user may traverse, as /srv or /var/lib are: the data dir must protect
    itself, not rely on a private parent (pytest's tmp_path is private)."""
    parent = tempfile.mkdtemp(prefix="volt-private-", dir="/tmp")
    os.chmod(parent, 0o755)
    yield parent
    subprocess.run(["pkill", "-KILL", "-f", parent], check=False)
    shutil.rmtree(parent, ignore_errors=True)


def hostile_image(data_dir: str, busybox_rootfs: str) -> str:
    """An image directory with a setuid-root shell and a world-writable device node for /dev/mem."""
    images = os.path.join(data_dir, "images")
    os.makedirs(images)
    os.chmod(data_dir, 0o755)
    os.chmod(images, 0o755)
    image = os.path.join(images, "hostile")
    shutil.copytree(busybox_rootfs, image, symlinks=True)
    os.chmod(image, 0o755)  # as an image author ships it
    shutil.copy2("/bin/busybox", os.path.join(image, "bin", "suidsh"))
    os.chmod(os.path.join(image, "bin", "suidsh"), 0o4755)
    os.mknod(os.path.join(image, "dev", "mem"), stat.S_IFCHR | 0o666, os.makedev(1, 1))
    os.chmod(os.path.join(image, "dev", "mem"), 0o666)
    return image


def as_nobody(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", *argv], capture_output=True, text=True, check=False)


def mode(path: str) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_other_users_cannot_reach_images_or_containers(volt, busybox_rootfs, open_parent):
    """An image's setuid-root program and device node, reachable by every local user before."""
    data_dir = os.path.join(open_parent, "volt")
    image = hostile_image(data_dir, busybox_rootfs)
    assert as_nobody("test", "-x", os.path.join(image, "bin", "suidsh")).returncode == 0  # the attack works now

    result = volt(name="web", image="hostile", command=["/bin/sleep", "1000"], data_dir=data_dir)
    assert not result.get("failed"), result.get("msg")
    container = os.path.join(data_dir, "containers", "web")
    rootfs = os.path.join(container, "rootfs")

    for path in (data_dir, os.path.join(data_dir, "containers"), os.path.join(data_dir, "tmp"), container):
        assert mode(path) == 0o700, path
    for record in ("config.yaml", "state.json", "logs/current.log"):
        assert mode(os.path.join(container, record)) == 0o600, record
    assert mode(os.path.join(container, "logs")) == 0o700

    for path in (os.path.join(image, "bin", "suidsh"), os.path.join(rootfs, "bin", "busybox"), rootfs):
        attempt = as_nobody("test", "-e", path)
        assert attempt.returncode != 0, f"nobody reaches {path}"
    attempt = as_nobody("cat", os.path.join(rootfs, "etc", "os-release"))
    assert attempt.returncode != 0 and "Permission denied" in attempt.stderr

    # Inside the container's tree: no device node, and no setuid bit (proot cannot honour it).
    assert not os.path.lexists(os.path.join(rootfs, "dev", "mem"))
    assert mode(os.path.join(rootfs, "bin", "suidsh")) == 0o755
    assert volt(name="web", state="absent", data_dir=data_dir)["changed"] is True


def test_secret_env_reaches_the_guest_and_nothing_else(converge, volt, target, data_dir):
    """secret_env: check -> apply -> check -> apply, then every file the collection wrote is
    searched for the value, and the result and diff carry only digests."""
    marker = "/tmp/seen"
    command = ["/bin/sh", "-c", f'printf %s "$TOKEN" > {marker}; printf %s "$PLAIN" >> {marker}; exec sleep 1000']
    base = {"name": "vault", "image": "busybox", "command": command, "env": {"PLAIN": "|plain"}}
    applied = converge(secret_env={"TOKEN": SECRET}, **base)
    rootfs = target.rootfs("vault")
    seen = os.path.join(rootfs, marker.lstrip("/"))
    assert wait_for(lambda: os.path.exists(seen) and open(seen).read().endswith("|plain"))
    with open(seen) as handle:
        assert handle.read() == SECRET + "|plain"

    digest = applied["container"]["config"]["secret_env"]["TOKEN"]
    assert digest.startswith("hmac-sha256:") and len(digest) == len("hmac-sha256:") + 64
    assert SECRET not in json.dumps(applied)
    assert applied["diff"]["after"]["config"]["secret_env"] == {"TOKEN": digest}

    secrets_dir = os.path.join(data_dir, "secrets")
    assert mode(secrets_dir) == 0o700
    assert mode(os.path.join(secrets_dir, "vault.json")) == 0o600
    assert mode(os.path.join(secrets_dir, ".key")) == 0o600
    holders = files_containing(data_dir, SECRET.encode(), skip=rootfs)
    assert holders == [os.path.join(secrets_dir, "vault.json")]

    # A new value is drift, seen through the digest alone; the container is made again with it.
    changed = volt(secret_env={"TOKEN": NEW_SECRET}, **base)
    assert changed["changed"] is True and changed["drifted"] == ["secret_env"]
    assert wait_for(lambda: os.path.exists(seen) and open(seen).read() == NEW_SECRET + "|plain")

    # Left out, the secrets stay, also when another change makes the container again.
    again = volt(**dict(base, env={"PLAIN": "|other"}))
    assert again["changed"] is True and again["drifted"] == ["env"]
    assert wait_for(lambda: os.path.exists(seen) and open(seen).read() == NEW_SECRET + "|other")
    assert volt(**dict(base, env={"PLAIN": "|other"}))["changed"] is False

    assert volt(name="vault", state="absent")["changed"] is True
    assert not os.path.exists(os.path.join(secrets_dir, "vault.json"))


def files_containing(root: str, needle: bytes, skip: str) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == skip:
            dirnames[:] = []
            continue
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if needle in handle.read():
                        found.append(path)
    return sorted(found)
