# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply an image layer (a tar stream) onto a root directory, by the OCI image-spec rules.

Written by hand because tarfile.extractall does not know whiteouts or opaque directories, and
its 'data' filter (Python >= 3.12 only) rejects things layers legitimately hold (setuid files,
absolute symlink targets). Safety rules: no entry may be absolute, contain '..', or reach its
place through a symlink; hard links must point at an existing non-directory inside the root.
Symlinks are created as they are and never followed.
"""

from __future__ import annotations

import os
import stat
import tarfile

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._rootfs import remove_tree

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_COPY_CHUNK = 1024 * 1024
# Regular files up to this size are read into memory and written by worker threads; bigger ones
# are streamed by the main thread. In-flight contents are capped at _QUEUED_BYTES.
_QUEUED_FILE = 1024 * 1024
_QUEUED_BYTES = 32 * 1024 * 1024
WRITERS = 4


class LayerError(VoltError):
    """A layer that breaks the rules; names the layer and the entry."""


def entry_path(name: str, layer: str) -> str:
    """The entry's path relative to the root, or LayerError if it could escape."""
    if name.startswith("/"):
        raise LayerError(f"layer {layer}: entry {name!r} is an absolute path", layer=layer, entry=name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer {layer}: entry {name!r} climbs out with '..'", layer=layer, entry=name)
    return "/".join(parts)


class _FileWriter:
    """Creates regular files on worker threads.

    Why: creating a file costs about half a millisecond of kernel time on common virtual disks,
    and that work runs in parallel, while the tar stream can only be read in order. The main
    thread reads each small file and queues it; anything that removes, links or inspects a path
    first calls drain(), so the result is the same as writing in order.
    """

    def __init__(self, workers: int) -> None:
        self.pending: set[str] = set()
        self._futures: list = []
        self._bytes = 0
        self._pool = None
        if workers > 1:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="volt-layer-write")

    def submit(self, host: str, write, size: int) -> None:
        if self._pool is None:
            write()
            return
        if self._bytes + size > _QUEUED_BYTES:
            self.drain()
        self.pending.add(host)
        self._bytes += size
        self._futures.append(self._pool.submit(write))

    def drain(self) -> None:
        """Wait for every queued file; raise the first error."""
        futures, self._futures, self._bytes = self._futures, [], 0
        self.pending.clear()
        error = None
        for future in futures:
            exc = future.exception()
            if exc is not None and error is None:
                error = exc
        if error is not None:
            raise error

    def close(self) -> None:
        try:
            self.drain()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


class LayerApplier:
    """Applies layers in order onto one root; `rootless` skips what only root may create;
    `writers` threads create regular files (1: everything in the calling thread)."""

    def __init__(self, root: str, rootless: bool | None = None, writers: int | None = None) -> None:
        self.root = root
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.skipped: list[str] = []
        self.writers = WRITERS if writers is None else writers
        self._writer: _FileWriter | None = None
        # Directories already checked to be real (not symlinks): most entries share parents, and
        # an lstat per path component per entry dominated unpacking. Cleared on every removal.
        self._known_dirs: set[str] = set()

    # -- paths ---------------------------------------------------------------------------------
    def _parent(self, relative: str, layer: str, create: bool = True) -> str:
        """Host path of relative's parent directory, creating missing directories, never
        passing through a symlink or a non-directory."""
        current = self.root
        for part in relative.split("/")[:-1]:
            current = os.path.join(current, part)
            if current in self._known_dirs:
                continue
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if current in self._writer.pending:  # a queued file: let it land, then judge it
                    self._writer.drain()
                    return self._parent(relative, layer, create)
                if not create:
                    return ""
                os.mkdir(current, 0o755)
                self._known_dirs.add(current)
                continue
            if stat.S_ISLNK(mode):
                raise LayerError(
                    f"layer {layer}: entry {relative!r} goes through the symlink "
                    f"{os.path.relpath(current, self.root)!r}; layers may not write through symlinks",
                    layer=layer,
                    entry=relative,
                )
            if stat.S_ISDIR(mode):
                self._known_dirs.add(current)
                continue
            if not stat.S_ISDIR(mode):
                raise LayerError(
                    f"layer {layer}: entry {relative!r} is below a non-directory", layer=layer, entry=relative
                )
        return current

    def _host(self, relative: str, layer: str) -> str:
        return os.path.join(self._parent(relative, layer), os.path.basename(relative))

    def _remove(self, path: str) -> None:
        self._writer.drain()
        self._known_dirs.clear()
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            remove_tree(path)
        else:
            os.unlink(path)

    # -- whiteouts -----------------------------------------------------------------------------
    def _opaque(self, directory: str, written: set[str], layer: str) -> None:
        """Hide everything lower layers put in directory; keep what this layer already wrote."""
        self._writer.drain()
        host = self._host(directory, layer) if directory else self.root
        if os.path.islink(host) or not os.path.isdir(host):
            return
        for entry in os.listdir(host):
            relative = f"{directory}/{entry}" if directory else entry
            if relative in written:
                if any(path.startswith(relative + "/") for path in written) or os.path.isdir(os.path.join(host, entry)):
                    self._opaque(relative, written, layer)  # lower children below it go too
                continue
            self._remove(os.path.join(host, entry))

    # -- entries -------------------------------------------------------------------------------
    def apply(self, archive: tarfile.TarFile, layer: str) -> None:
        """Apply every entry of one layer, in order."""
        self._writer = _FileWriter(self.writers)
        try:
            self._apply(archive, layer)
        finally:
            self._writer.close()
            self._writer = None

    def _apply(self, archive: tarfile.TarFile, layer: str) -> None:
        written: set[str] = set()
        directories: list[tuple[str, tarfile.TarInfo]] = []
        for member in archive:
            relative = entry_path(member.name, layer)
            base = os.path.basename(relative)
            parent = os.path.dirname(relative)
            if base == OPAQUE_MARKER:
                self._opaque(parent, written, layer)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                name = base[len(WHITEOUT_PREFIX) :]
                if name in ("", ".", ".."):
                    raise LayerError(
                        f"layer {layer}: whiteout {relative!r} names no entry", layer=layer, entry=relative
                    )
                hidden = f"{parent}/{name}" if parent else name
                if hidden not in written:
                    host = self._parent(hidden, layer, create=False)
                    if host:
                        self._remove(os.path.join(host, os.path.basename(hidden)))
                continue
            if not relative:
                continue  # the root itself ("./"): its attributes stay the store's
            if member.islnk():
                self._link(member, relative, layer)
                written.add(relative)
                continue
            self._entry(archive, member, relative, layer)
            written.add(relative)
            if member.isdir():
                directories.append((relative, member))
        self._writer.drain()
        for relative, member in reversed(directories):  # modes last: a 0555 dir still gets children
            host = os.path.join(self.root, relative)
            if os.path.isdir(host) and not os.path.islink(host):
                self._attributes(host, member, is_dir=True)

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        host = self._host(relative, layer)
        if host in self._writer.pending:  # the same path twice in one layer
            self._writer.drain()
        try:
            existing = os.lstat(host).st_mode
        except FileNotFoundError:
            existing = None
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing):
                os.unlink(host)
                existing = None
            if existing is None:
                os.mkdir(host, 0o700)
            return  # keep an existing directory's contents; attributes are set at the end
        if existing is not None:
            self._remove(host)  # replace non-directories, and a directory by a non-directory
        if member.isreg() and member.size <= _QUEUED_FILE:
            data = archive.extractfile(member).read()
            self._writer.submit(host, lambda: self._write_file(host, data, member), len(data))
        elif self._create(archive, member, host, relative, layer):
            self._attributes(host, member)

    def _write_file(self, host: str, data: bytes, member: tarfile.TarInfo) -> None:
        fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as target:
            target.write(data)
        self._attributes(host, member)

    def _create(self, archive: tarfile.TarFile, member: tarfile.TarInfo, host: str, relative: str, layer: str) -> bool:
        """Create a non-directory entry at host; False when it was skipped (devices, rootless)."""
        if member.isreg():
            source = archive.extractfile(member)
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as target:
                while True:
                    chunk = source.read(_COPY_CHUNK)
                    if not chunk:
                        break
                    target.write(chunk)
        elif member.issym():
            os.symlink(member.linkname, host)
        elif member.isfifo():
            os.mkfifo(host, 0o600)
        elif member.ischr() or member.isblk():
            if self.rootless:
                self.skipped.append(relative)
                return False
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            os.mknod(host, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            raise LayerError(
                f"layer {layer}: entry {relative!r} has an unsupported type {member.type!r}",
                layer=layer,
                entry=relative,
            )
        return True

    def _link(self, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        self._writer.drain()
        target_relative = entry_path(member.linkname, layer)
        target_parent = self._parent(target_relative, layer, create=False)
        target = os.path.join(target_parent, os.path.basename(target_relative)) if target_parent else ""
        try:
            target_mode = os.lstat(target).st_mode if target else None
        except FileNotFoundError:
            target_mode = None
        if target_mode is None or stat.S_ISDIR(target_mode):
            raise LayerError(
                f"layer {layer}: hard link {relative!r} points at {member.linkname!r}, which is "
                "not a file in the image",
                layer=layer,
                entry=relative,
            )
        host = self._host(relative, layer)
        self._remove(host)
        os.link(target, host, follow_symlinks=False)

    def _attributes(self, host: str, member: tarfile.TarInfo, is_dir: bool = False) -> None:
        if not self.rootless:
            try:
                os.lchown(host, member.uid, member.gid)
            except OSError:
                pass
        if not member.issym():
            # chmod after chown: chown clears setuid/setgid bits.
            os.chmod(host, stat.S_IMODE(member.mode))
            if not is_dir:
                os.utime(host, (member.mtime, member.mtime), follow_symlinks=False)
        else:
            try:
                os.utime(host, (member.mtime, member.mtime), follow_symlinks=False)
            except (NotImplementedError, OSError):
                pass
