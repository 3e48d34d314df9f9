# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The image store: trees both backends run from, content-addressed blobs, and an index.

<data_dir>/images/<image>/           extracted tree (':' '/' '@' in names become %3A %2F %40)
<data_dir>/images/.index.json        image name -> digest, source, size, created
<data_dir>/blobs/sha256/<hex>        downloaded tarballs and layers, by digest
An image is built under a hidden name and swapped in by rename: a failed build leaves the store
as it was. Digests are checked before they become file names, and a stored blob is hashed again
before it is used (see verified_blob).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records, _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import image_dir_name

_CHUNK = 1024 * 1024
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_OTHER_ALGORITHMS_RE = re.compile(r"(sha384|sha512|blake3):[0-9a-f]+")


def check_digest(value: object, what: str = "digest") -> str:
    """value if it is sha256:<64 lower-case hex>, else a VoltError naming it: digests become file
    names in the blob store, so nothing else may pass."""
    if isinstance(value, str) and _DIGEST_RE.fullmatch(value):
        return value
    if isinstance(value, str) and _OTHER_ALGORITHMS_RE.fullmatch(value):
        raise VoltError(f"{what} {value!r} uses {value.split(':')[0]}: only sha256 digests are supported")
    raise VoltError(f"{what} {value!r} is not a digest (sha256:<64 lower-case hex digits>)")


def parse_checksum(value: str) -> str:
    """'sha256:<64 hex>' -> the same, lower-cased; anything else is a clear error."""
    algorithm, _sep, digest = str(value).partition(":")
    digest = digest.lower()
    if algorithm != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise VoltError(f"checksum {value!r} must look like sha256:<64 hex digits>")
    return f"sha256:{digest}"


def file_digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


class ImageStore:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.images = os.path.join(data_dir, "images")
        self.blobs = os.path.join(data_dir, "blobs", "sha256")
        self.index_path = os.path.join(self.images, ".index.json")  # hidden: never taken for an image

    # -- index ---------------------------------------------------------------------------------
    def index(self) -> dict:
        try:
            return _records.read_json(self.index_path)
        except FileNotFoundError:
            return {}

    def record(self, name: str) -> dict | None:
        """The index entry of an image whose tree exists; a tree without entry (put there by hand
        or by the Volt CLI) reads as a directory image."""
        entry = self.index().get(name)
        if os.path.isdir(self.tree(name)):
            return entry or {"source": "directory"}
        return None

    def tree(self, name: str) -> str:
        return os.path.join(self.images, image_dir_name(name))

    def existing_tree(self, name: str) -> str | None:
        """The image's tree if it is in the store: under its encoded name, or under its plain
        name (a tree put there by hand, or by a version before names were encoded)."""
        for candidate in (name, image_dir_name(name)):
            path = os.path.join(self.images, candidate)
            if "/" not in candidate and os.path.isdir(path):
                return path
        return None

    def digest(self, name: str) -> str | None:
        """The digest the index records for the image (None for directory images)."""
        try:
            return self.index().get(name, {}).get("digest")
        except VoltError:
            return None

    def config(self, name: str) -> dict | None:
        """The image's config (Entrypoint, Cmd, Env, ...) the index records, if it has one."""
        try:
            config = self.index().get(name, {}).get("config")
        except VoltError:
            return None
        return config if isinstance(config, dict) else None

    def lock(self):
        return _records.Lock(os.path.join(self.data_dir, "locks"), "images")

    # -- blobs ---------------------------------------------------------------------------------
    def blob(self, digest: str) -> str:
        return os.path.join(self.blobs, check_digest(digest).split(":", 1)[1])

    def verified_blob(self, digest: str) -> str | None:
        """The stored blob for digest after hashing it again, or None (a blob that does not match
        is removed). Why hash again: the blob directory is a cache any process of this user can
        write, and a file cut short by a crash has the right name but not the right content; one
        sequential read costs far less than unpacking a wrong layer."""
        path = self.blob(digest)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # NONBLOCK: a FIFO must not hang us
        except OSError:
            if os.path.islink(path):
                os.unlink(path)  # the store writes no symlinks
            return None
        sha = hashlib.sha256()
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                sha.update(chunk)
        if f"sha256:{sha.hexdigest()}" == digest:
            return path
        os.unlink(path)
        return None

    def _private(self) -> None:
        """The data directory is private (0700): images hold setuid programs and other things
        other local users must not reach."""
        _records.private_dir(self.data_dir)

    def new_blob(self) -> tuple[int, str]:
        """A temporary file next to the blobs, to be filled, verified and put in place."""
        self._private()
        os.makedirs(self.blobs, exist_ok=True)
        return tempfile.mkstemp(prefix=".incoming-", dir=self.blobs)

    def keep_blob(self, temporary: str, digest: str) -> str:
        """Put a verified temporary file in place as the blob of digest."""
        final = self.blob(digest)
        os.chmod(temporary, 0o644)
        os.rename(temporary, final)
        return final

    # -- trees ---------------------------------------------------------------------------------
    def staging(self, name: str) -> str:
        self._private()
        os.makedirs(self.images, exist_ok=True)
        path = tempfile.mkdtemp(prefix=f".{image_dir_name(name)}.building-", dir=self.images)
        os.chmod(path, 0o755)
        return path

    def install(self, name: str, staging: str, entry: dict) -> None:
        """Swap the built tree in and record it; the old tree (if any) goes after the rename."""
        final = self.tree(name)
        old = ""
        if os.path.lexists(final):
            old = tempfile.mkdtemp(prefix=f".{image_dir_name(name)}.old-", dir=self.images)
            os.rename(final, os.path.join(old, "tree"))
        try:
            os.rename(staging, final)
        except BaseException:
            if old:
                os.rename(os.path.join(old, "tree"), final)
            raise
        index = self.index()
        index[name] = dict(entry, created=_records.utc_now())
        _records.write_json(self.index_path, index)
        if old:
            _rootfs.remove_tree(old)

    def remove(self, name: str) -> None:
        _rootfs.remove_aside(self.tree(name), image_dir_name(name))
        index = self.index()
        if index.pop(name, None) is not None:
            _records.write_json(self.index_path, index)

    # -- users ---------------------------------------------------------------------------------
