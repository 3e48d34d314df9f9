"""volt_image with debootstrap from Debian's mirror (the one outside service the tests may use).
The store lives in the cache directory, so packages are downloaded once per machine; each run
still removes the image and builds it again from the cached packages."""

from __future__ import annotations

import os

from ...polling import wait_for
from .test_volt_image import sequence

CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
STORE = os.path.join(CACHE, "armoredgate-volt", "debootstrap-store")


def test_debootstrap_image_runs_a_container(target):
    target.data_dir = STORE  # packages cached across runs; the image itself is rebuilt below
    target.volt(name="deb", state="absent")
    target.volt("volt_image", name="bookworm", state="absent", force=True)
    image = sequence(target, name="bookworm", suite="bookworm", include=["python3"])["image"]
    assert image["source"] == "debootstrap" and image["os"] == "Debian GNU/Linux 12 (bookworm)"
    assert image["include"] == ["python3"] and os.path.exists(os.path.join(image["path"], "usr/bin/python3"))
    # Other packages are another image: built again.
    other = target.volt("volt_image", check=True, name="bookworm", suite="bookworm")
    assert other["changed"] is True and other["actions"] == ["debootstrap"]
    command = ["/bin/sh", "-c", "cat /etc/debian_version > /root/version; exec sleep 1000"]
    try:
        target.volt(name="deb", image="bookworm", command=command)
        version = os.path.join(target.rootfs("deb"), "root", "version")
        assert wait_for(lambda: os.path.exists(version) and open(version).read().startswith("12."), timeout=30)
    finally:
        target.volt(name="deb", state="absent")
