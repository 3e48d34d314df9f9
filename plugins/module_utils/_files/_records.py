# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""On-disk records: atomic writes, tolerant reads and a per-container lock."""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import tempfile

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord, VoltError


def utc_now() -> str:
    """RFC 3339 timestamp in UTC, the format the Volt CLI writes."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def utc_time(seconds: float) -> str:
    """A Unix time as the same RFC 3339 UTC timestamp."""
    return datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def private_dir(path: str) -> str:
    """Create path as a directory only its owner can enter (0700), or tighten ours to that.

    Every tree below the data directory holds what images and containers bring (setuid programs,
    files other users must not reach) or records that may hold secrets: other local users must not
    get in, whatever the umask. A directory owned by someone else is left alone.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        info = os.stat(path)
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.chmod(path, 0o700)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return private_dir(path)
    return path


def atomic_write(path: str, data: str, mode: int = 0o600) -> None:
    """Write data to path via a temporary file and rename, so readers never see half a file.

    Private (0600) unless asked otherwise: records may hold environment values.
    """
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json(path: str, value: object) -> None:
    atomic_write(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def write_config(path: str, value: dict) -> None:
    # JSON is valid YAML 1.2: the Volt CLI reads config.yaml unchanged, and the module needs no
    # PyYAML on the managed node (Termux phones rarely have it).
    write_json(path, value)


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"corrupt record {path}: {exc}", path=path) from None
    if not isinstance(value, dict):
        raise CorruptRecord(f"corrupt record {path}: expected a mapping", path=path)
    return value


def read_config(path: str) -> dict:
    """Read config.yaml: JSON as we write it, or block YAML as the Volt CLI writes it."""
    try:
        return read_json(path)
    except VoltError:
        pass
    try:
        import yaml
    except ImportError:
        raise CorruptRecord(f"{path} is not JSON and PyYAML is not installed to read it as YAML", path=path) from None
    try:
        with open(path, encoding="utf-8") as handle:
            value = yaml.safe_load(handle)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CorruptRecord(f"corrupt record {path}: {exc}", path=path) from None
    if not isinstance(value, dict):
        raise CorruptRecord(f"corrupt record {path}: expected a mapping", path=path)
    return value


def _flock(fd: int) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        except OSError as exc:  # pragma: no cover - EINTR only
            if exc.errno != errno.EINTR:
                raise


class Lock:
    """An exclusive flock on <data_dir>/locks/<name>.lock, held while a container is changed.

    The lock file lives outside the container directory so that removing or renaming the
    container never races with the lock itself.
    """

    def __init__(self, locks_dir: str, name: str) -> None:
        self.path = os.path.join(locks_dir, name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> Lock:
        private_dir(os.path.dirname(self.path))
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            _flock(fd)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                current = False
            if current:
                self._fd = fd
                return self
            # discard() removed the file while this run waited: lock the file that is there now.
            os.close(fd)

    def discard(self) -> None:
        """Remove the lock file, still holding it (its container is gone). Unlinking only after
        the release would let a run that opened the old file and one that creates a new file
        both hold "the" lock; __enter__ checks that the file it locked is still the lock."""
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def __exit__(self, *exc_info: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
