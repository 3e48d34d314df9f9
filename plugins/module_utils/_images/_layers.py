# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Apply an image layer (a tar stream) onto a root directory, by the OCI image-spec rules.

Written by hand because tarfile.extractall does not know whiteouts or opaque directories, and
its 'data' filter (Python >= 3.12 only) rejects things layers legitimately hold (setuid files,
absolute symlink targets). Safety rules: no entry may be absolute, contain '..', or reach its
place through a symlink; hard links must point at an existing non-directory inside the root.
Symlinks are created as they are and never followed; device nodes are never created.

Why nothing outside the root can change: the root is opened once (O_DIRECTORY|O_NOFOLLOW) and
every operation, including the directory attributes deferred to the end of a layer, reaches its
place one component at a time with openat(O_DIRECTORY|O_NOFOLLOW) from that fd and then acts on
a name relative to the parent's fd, or on an fd it opened itself (no path string is ever
resolved by the kernel from the top). A component that is a symlink stops the walk, wherever
and whenever it appeared. Open directory fds are cached by relative path; the cache is right
because, while a layer is applied, only the applier writes the tree and it forgets every path it
removes or replaces. (One call acts by name: removing a 0000 directory as non-root chmods it
by name, after checking it is a directory, since it cannot be opened first.)

Tar streams that end early, lack the end-of-archive blocks or carry data after them, and layers
that would unpack past `max_bytes`, fail with LayerError; open_layer adds the compressed
stream's own checks (CRC, length).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zlib
from collections import OrderedDict

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_COPY_CHUNK = 1024 * 1024
# Regular files up to this size are read into memory and written by worker threads; bigger ones
# are streamed by the main thread. In-flight contents are capped at _QUEUED_BYTES.
_QUEUED_FILE = 1024 * 1024
_QUEUED_BYTES = 32 * 1024 * 1024
WRITERS = 4
# Directory fds kept open per layer, and closed ones waiting for queued writes to finish.
_OPEN_DIRS = 256
_RETIRED_DIRS = 256

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Opening a FIFO to set its attributes must not wait for a writer.
_FIFO_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
# What a damaged or truncated stream raises while it is read (gzip.BadGzipFile and bz2's errors
# are OSErrors; lzma's are added when the module exists). Only reads of the layer are guarded.
_STREAM_ERRORS: tuple = (tarfile.TarError, EOFError, OSError, zlib.error)
try:
    import lzma

    _STREAM_ERRORS += (lzma.LZMAError,)
except ImportError:  # Python built without liblzma
    lzma = None
# Zero padding accepted after the end-of-archive blocks (tar pads to its record size).
_TAIL_LIMIT = 4 * 1024 * 1024
_COMPRESSIONS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}


class LayerError(VoltError):
    """A layer that breaks the rules; names the layer and the entry."""


class LayerTooLarge(LayerError):
    """The unpacked files would exceed the applier's max_bytes."""


class _Unreachable(LayerError):
    """A path component is a symlink or not a directory."""


def entry_path(name: str, layer: str) -> str:
    """The entry's path relative to the root, or LayerError if it could escape."""
    if name.startswith("/"):
        raise LayerError(f"layer {layer}: entry {name!r} is an absolute path", layer=layer, entry=name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"layer {layer}: entry {name!r} climbs out with '..'", layer=layer, entry=name)
    return "/".join(parts)


def _split(relative: str) -> tuple[str, str]:
    parent, _sep, name = relative.rpartition("/")
    return parent, name


def _mode_at(parent_fd: int, name: str) -> int | None:
    """lstat of name in parent_fd, None if it does not exist."""
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# -- end of the stream -------------------------------------------------------------------------
_EOFHeaderError = tarfile.EOFHeaderError
_TarInfo = tarfile.TarInfo


class _Header(tarfile.TarInfo):
    """Notes on its archive when it read an end-of-archive block: tarfile stops the same way,
    and silently, at a stream that just ends or at a garbage header."""

    @classmethod
    def fromtarfile(cls, tarfile) -> _TarInfo:  # the parameter keeps the base class's name
        try:
            return super().fromtarfile(tarfile)
        except _EOFHeaderError:
            tarfile.volt_ended = True
            raise


def _watch_end(archive: tarfile.TarFile) -> bool:
    """Read the remaining headers with _Header; False if the caller chose its own TarInfo."""
    if archive.tarinfo is tarfile.TarInfo:
        archive.tarinfo = _Header
    return archive.tarinfo is _Header


def _check_end(archive: tarfile.TarFile, layer: str) -> None:
    """LayerError unless the archive ended with its two zero blocks and only zeros follow.
    Reading on to the end also makes a decompressor check its trailer (CRC and length)."""
    # An archive with no entries ended while tarfile.open read its first header: at offset 0
    # only the end-of-archive block gets that far without an error.
    ended = getattr(archive, "volt_ended", False) or (archive.offset == 0 and not archive.members)
    try:
        if not ended or archive.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
            raise LayerError(
                f"layer {layer}: the archive ends without its end-of-archive blocks: it is truncated or corrupt",
                layer=layer,
            )
        _check_tail(archive.fileobj, layer)
    except _STREAM_ERRORS as exc:
        raise LayerError(f"layer {layer}: the archive is truncated or corrupt at its end: {exc}", layer=layer) from None


def _check_tail(stream, layer: str) -> None:
    """LayerError if anything but a little zero padding follows the end-of-archive blocks: a
    second archive there would be ignored by some tools and unpacked by others."""
    seen = 0
    while True:
        chunk = stream.read(64 * 1024)
        if not chunk:
            return
        seen += len(chunk)
        if chunk.count(0) != len(chunk):
            raise LayerError(f"layer {layer}: the archive has data after its end-of-archive blocks", layer=layer)
        if seen > _TAIL_LIMIT:
            raise LayerError(
                f"layer {layer}: the archive has more than {_TAIL_LIMIT} bytes after its end-of-archive blocks",
                layer=layer,
            )


def open_layer(fileobj, layer: str, compression: str | None = "auto") -> tarfile.TarFile:
    """A streaming TarFile over fileobj (a binary file object the caller keeps and closes).

    compression is "gzip", "bzip2", "xz", None (a plain tar) or "auto" (by the magic bytes).
    The gzip, bz2 and lzma modules decompress: unlike tarfile's own 'r|gz', they check the
    stream's trailer, and LayerApplier.apply reads each stream to its end, so a cut or corrupt
    compressed stream fails the layer. Errors are LayerErrors naming the layer.
    """
    if compression == "auto":
        if not hasattr(fileobj, "peek"):
            fileobj = io.BufferedReader(fileobj)
        head = fileobj.peek(6)
        compression = next((kind for magic, kind in _COMPRESSIONS.items() if head.startswith(magic)), None)
    try:
        if compression == "gzip":
            import gzip

            fileobj = gzip.GzipFile(fileobj=fileobj, mode="rb")
        elif compression == "bzip2":
            import bz2

            fileobj = bz2.BZ2File(fileobj, mode="rb")
        elif compression == "xz":
            if lzma is None:
                raise LayerError(f"layer {layer}: this Python cannot decompress xz (no lzma module)", layer=layer)
            fileobj = lzma.LZMAFile(fileobj, mode="rb")
        elif compression is not None:
            raise ValueError(f"unknown compression {compression!r}")
        return tarfile.open(fileobj=fileobj, mode="r|", tarinfo=_Header)
    except _STREAM_ERRORS as exc:
        raise LayerError(
            f"layer {layer}: the archive is truncated or corrupt at its start: {exc}", layer=layer
        ) from None


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
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="volt-layer-write")

    @property
    def busy(self) -> bool:
        return bool(self._futures)

    def submit(self, relative: str, write, size: int) -> None:
        if self._pool is None:
            write()
            return
        if self._bytes + size > _QUEUED_BYTES:
            self.drain()
        self.pending.add(relative)
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


class _Dirs:
    """Open directory fds of one tree by relative path ("" is the root), least recently used
    first. A fd leaving the cache is closed only once no queued write can still use it."""

    def __init__(self, root_fd: int, writer: _FileWriter) -> None:
        self.root = root_fd
        self._writer = writer
        self._open: OrderedDict[str, int] = OrderedDict()
        self._retired: list[int] = []

    def get(self, relative: str) -> int | None:
        if not relative:
            return self.root
        fd = self._open.get(relative)
        if fd is not None:
            self._open.move_to_end(relative)
        return fd

    def add(self, relative: str, fd: int) -> None:
        self._open[relative] = fd
        if len(self._open) > _OPEN_DIRS:
            self._retire(self._open.popitem(last=False)[1])

    def forget(self, relative: str) -> None:
        """Drop relative and everything below it: it is being removed or replaced."""
        below = relative + "/"
        for key in [key for key in self._open if key == relative or key.startswith(below)]:
            self._retire(self._open.pop(key))

    def _retire(self, fd: int) -> None:
        self._retired.append(fd)
        if len(self._retired) > _RETIRED_DIRS:
            self._writer.drain()
        if not self._writer.busy:
            self._close_retired()

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for fd in retired:
            os.close(fd)

    def close(self) -> None:
        """Close every fd, the root's too; queued writes must be finished."""
        self._retired.extend(self._open.values())
        self._open.clear()
        self._retired.append(self.root)
        self._close_retired()


def _open_to_remove(parent_fd: int, name: str) -> int:
    """fd of the directory name, made writable and searchable so its entries can go."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        # A 0000 directory cannot be opened without root. chmod by name follows a symlink, so
        # check first: only the applier writes the tree, so the check still holds.
        if not stat.S_ISDIR(_mode_at(parent_fd, name) or 0):
            raise
        os.chmod(name, stat.S_IRWXU, dir_fd=parent_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & stat.S_IRWXU != stat.S_IRWXU:
            os.chmod(fd, stat.S_IRWXU)
    except OSError:
        os.close(fd)
        raise
    return fd


def _remove_files(fd: int) -> list[str]:
    """Unlink every non-directory in the directory fd; the names of its subdirectories."""
    subdirectories = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirectories.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return subdirectories


def _remove_tree(parent_fd: int, name: str) -> None:
    """Remove the directory name below parent_fd and all it holds, never following a symlink:
    each level is opened from its parent's fd. Iterative, so depth costs fds, not recursion."""
    # (parent fd, name, own fd, subdirectories still to remove)
    stack: list[tuple[int, str, int, list[str]]] = []

    def enter(parent: int, child: str) -> None:
        fd = _open_to_remove(parent, child)
        stack.append((parent, child, fd, []))
        stack[-1][3].extend(_remove_files(fd))

    try:
        enter(parent_fd, name)
        while stack:
            parent, current, fd, subdirectories = stack[-1]
            if subdirectories:
                enter(fd, subdirectories.pop())
                continue
            stack.pop()
            os.close(fd)
            os.rmdir(current, dir_fd=parent)
    finally:
        for _parent, _name, fd, _subdirectories in stack:
            os.close(fd)


class LayerApplier:
    """Applies layers in order onto one root.

    `rootless` skips what only root may do (owners); `writers` threads create regular files (1:
    everything in the calling thread); `max_bytes` caps the bytes of regular files written by
    this applier over all the layers it applies (None: no cap), checked against each entry's
    size before it is written, so a header claiming a huge size fails at once. Device nodes are
    never created: they are listed in `skipped`, with hard links to them.
    """

    def __init__(
        self,
        root: str,
        rootless: bool | None = None,
        writers: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.root = root
        self.rootless = os.geteuid() != 0 if rootless is None else rootless
        self.skipped: list[str] = []
        self.writers = WRITERS if writers is None else writers
        self.max_bytes = max_bytes
        self.bytes_written = 0
        self._skipped: set[str] = set()
        self._writer: _FileWriter | None = None
        self._dirs: _Dirs | None = None

    # -- paths ---------------------------------------------------------------------------------
    def _dir(self, relative: str, entry: str, layer: str, create: bool = True) -> int | None:
        """fd of the directory relative ("" for the root), reached one component at a time and
        never through a symlink; missing ones are created, or None when create is False."""
        fd = self._dirs.get(relative)
        if fd is not None:
            return fd
        parts = relative.split("/")
        known = len(parts)
        while fd is None:  # the longest prefix already open; the root at worst
            known -= 1
            fd = self._dirs.get("/".join(parts[:known]))
        for index in range(known, len(parts)):
            path = "/".join(parts[: index + 1])
            fd = self._open_dir(fd, parts[index], path, entry=entry, layer=layer, create=create)
            if fd is None:
                return None
            self._dirs.add(path, fd)
        return fd

    def _open_dir(self, parent_fd: int, name: str, path: str, *, entry: str, layer: str, create: bool) -> int | None:
        while True:
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            except FileNotFoundError:
                if path in self._writer.pending:  # a queued file: let it land, then judge it
                    self._writer.drain()
                    continue
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o755, dir_fd=parent_fd)
                except OSError as exc:
                    raise self._walk_error(exc, parent_fd, name, path, entry=entry, layer=layer) from None
            except OSError as exc:
                raise self._walk_error(exc, parent_fd, name, path, entry=entry, layer=layer) from None

    @staticmethod
    def _walk_error(exc: OSError, parent_fd: int, name: str, path: str, *, entry: str, layer: str) -> LayerError:
        try:
            mode = _mode_at(parent_fd, name) or 0
        except OSError:
            mode = 0
        if stat.S_ISLNK(mode):
            return _Unreachable(
                f"layer {layer}: entry {entry!r} goes through the symlink {path!r}; layers may not write "
                "through symlinks",
                layer=layer,
                entry=entry,
            )
        if mode and not stat.S_ISDIR(mode):
            return _Unreachable(f"layer {layer}: entry {entry!r} is below a non-directory", layer=layer, entry=entry)
        return LayerError(
            f"layer {layer}: entry {entry!r}: cannot open {path!r}: {exc.strerror}", layer=layer, entry=entry
        )

    def _find_dir(self, relative: str, layer: str) -> int | None:
        """fd of the existing directory relative; None if it is missing, a symlink or no
        directory. Its parents must be directories (LayerError otherwise)."""
        fd = self._dirs.get(relative)
        if fd is not None:
            return fd
        parent, name = _split(relative)
        parent_fd = self._dir(parent, relative, layer, create=False)
        if parent_fd is None:
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._walk_error(exc, parent_fd, name, relative, entry=relative, layer=layer) from None
        self._dirs.add(relative, fd)
        return fd

    def _remove_at(self, parent_fd: int, name: str, relative: str) -> None:
        """Remove name (any type, a whole tree for a directory) from the directory parent_fd."""
        self._writer.drain()
        mode = _mode_at(parent_fd, name)
        if mode is None:
            return
        if stat.S_ISDIR(mode):
            self._dirs.forget(relative)
            _remove_tree(parent_fd, name)
        else:
            os.unlink(name, dir_fd=parent_fd)

    def _skip(self, relative: str) -> None:
        self.skipped.append(relative)
        self._skipped.add(relative)

    # -- whiteouts -----------------------------------------------------------------------------
    def _whiteout(self, relative: str, written: set[str], layer: str) -> None:
        parent, base = _split(relative)
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise LayerError(f"layer {layer}: whiteout {relative!r} names no entry", layer=layer, entry=relative)
        hidden = f"{parent}/{name}" if parent else name
        if hidden in written:
            return
        parent_fd = self._dir(parent, hidden, layer, create=False)
        if parent_fd is not None:
            self._remove_at(parent_fd, name, hidden)

    def _opaque(self, directory: str, written: set[str], layer: str) -> None:
        """Hide everything lower layers put in directory; keep what this layer already wrote."""
        self._writer.drain()
        found = self._find_dir(directory, layer)
        if found is None:
            return
        fd = os.dup(found)  # this fd outlives walks below, which may close the cached one
        try:
            for name in os.listdir(fd):
                relative = f"{directory}/{name}" if directory else name
                if relative not in written:
                    self._remove_at(fd, name, relative)
                elif stat.S_ISDIR(_mode_at(fd, name) or 0) or any(path.startswith(relative + "/") for path in written):
                    self._opaque(relative, written, layer)  # lower children below it go too
        finally:
            os.close(fd)

    # -- entries -------------------------------------------------------------------------------
    def apply(self, archive: tarfile.TarFile, layer: str) -> None:
        """Apply every entry of one layer, in order."""
        root_fd = os.open(self.root, _DIR_FLAGS)
        self._writer = _FileWriter(self.writers)
        self._dirs = _Dirs(root_fd, self._writer)
        try:
            self._apply(archive, layer)
        finally:
            try:
                self._writer.close()
            finally:
                self._dirs.close()
                self._writer = self._dirs = None

    def _members(self, archive: tarfile.TarFile, layer: str):
        """The archive's entries; LayerError when the stream is damaged or ends early."""
        watched = _watch_end(archive)
        last = None
        while True:
            try:
                member = archive.next()
            except _STREAM_ERRORS as exc:
                where = f"after entry {last!r}" if last is not None else "at its start"
                raise LayerError(
                    f"layer {layer}: the archive is truncated or corrupt {where}: {exc}", layer=layer, entry=last
                ) from None
            if member is None:
                break
            last = member.name
            yield member
        if watched:
            _check_end(archive, layer)

    def _apply(self, archive: tarfile.TarFile, layer: str) -> None:
        written: set[str] = set()
        directories: list[tuple[str, tarfile.TarInfo]] = []
        for member in self._members(archive, layer):
            relative = entry_path(member.name, layer)
            parent, base = _split(relative)
            if base == OPAQUE_MARKER:
                self._opaque(parent, written, layer)
                continue
            if base.startswith(WHITEOUT_PREFIX):
                self._whiteout(relative, written, layer)
                continue
            if not relative:
                continue  # the root itself ("./"): its attributes stay the store's
            if member.islnk():
                self._link(member, relative, layer)
            else:
                self._entry(archive, member, relative, layer)
            written.add(relative)
            if member.isdir():
                directories.append((relative, member))
        self._writer.drain()
        self._directory_attributes(directories, layer)

    def _directory_attributes(self, directories: list[tuple[str, tarfile.TarInfo]], layer: str) -> None:
        """Modes last: a 0555 directory still got its children. Each directory is reached again
        from the root; one that is no longer reachable without a symlink keeps its attributes."""
        for relative, member in reversed(directories):
            try:
                fd = self._find_dir(relative, layer)
            except _Unreachable:
                continue
            if fd is not None:
                self._attributes(fd, member, times=False)

    def _entry(self, archive: tarfile.TarFile, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        parent, name = _split(relative)
        parent_fd = self._dir(parent, relative, layer)
        if relative in self._writer.pending:  # the same path twice in one layer
            self._writer.drain()
        existing = _mode_at(parent_fd, name)
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing):
                os.unlink(name, dir_fd=parent_fd)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            return  # keep an existing directory's contents; attributes are set at the end
        if existing is not None:
            self._remove_at(parent_fd, name, relative)  # replace non-directories, and a directory by a non-directory
        if member.isreg():
            self._file(archive, member, parent_fd, name, relative=relative, layer=layer)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
            self._symlink_attributes(parent_fd, name, member)
        elif member.isfifo():
            os.mkfifo(name, 0o600, dir_fd=parent_fd)
            fd = os.open(name, _FIFO_FLAGS, dir_fd=parent_fd)
            try:
                self._attributes(fd, member)
            finally:
                os.close(fd)
        elif member.ischr() or member.isblk():
            self._skip(relative)  # proot binds the host's /dev and nspawn makes its own
        else:
            raise LayerError(
                f"layer {layer}: entry {relative!r} has an unsupported type {member.type!r}",
                layer=layer,
                entry=relative,
            )

    # -- regular files ---------------------------------------------------------------------------
    def _file(
        self, archive: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, name: str, *, relative: str, layer: str
    ) -> None:
        self._claim(member, relative, layer)
        source = archive.extractfile(member)
        if member.size <= _QUEUED_FILE:
            data = self._read(source, member.size, relative, layer)
            self._check_size(len(data), member, relative, layer)
            self.bytes_written += len(data)
            self._writer.submit(relative, lambda: self._write_file(parent_fd, name, data, member), len(data))
            return
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent_fd)
        try:
            copied = 0
            while True:
                chunk = self._read(source, _COPY_CHUNK, relative, layer)
                if not chunk:
                    break
                _write_all(fd, chunk)
                copied += len(chunk)
                self.bytes_written += len(chunk)
            self._check_size(copied, member, relative, layer)
            self._attributes(fd, member)
        finally:
            os.close(fd)

    def _claim(self, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        """LayerError if the entry's size, as its header claims, would pass max_bytes."""
        if self.max_bytes is not None and self.bytes_written + member.size > self.max_bytes:
            raise LayerTooLarge(
                f"layer {layer}: entry {relative!r} ({member.size} bytes) makes the unpacked files exceed "
                f"the limit of {self.max_bytes} bytes",
                layer=layer,
                entry=relative,
                limit=self.max_bytes,
            )

    @staticmethod
    def _read(source, size: int, relative: str, layer: str) -> bytes:
        try:
            return source.read(size)
        except _STREAM_ERRORS as exc:
            raise LayerError(
                f"layer {layer}: the archive is truncated or corrupt in entry {relative!r}: {exc}",
                layer=layer,
                entry=relative,
            ) from None

    @staticmethod
    def _check_size(got: int, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        if got != member.size:
            raise LayerError(
                f"layer {layer}: entry {relative!r} is truncated ({got} of {member.size} bytes)",
                layer=layer,
                entry=relative,
            )

    def _write_file(self, parent_fd: int, name: str, data: bytes, member: tarfile.TarInfo) -> None:
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent_fd)
        try:
            _write_all(fd, data)
            self._attributes(fd, member)
        finally:
            os.close(fd)

    # -- links and attributes --------------------------------------------------------------------
    def _link(self, member: tarfile.TarInfo, relative: str, layer: str) -> None:
        self._writer.drain()
        target = entry_path(member.linkname, layer)
        target_parent, target_name = _split(target)
        target_fd = self._dir(target_parent, relative, layer, create=False) if target else None
        target_mode = _mode_at(target_fd, target_name) if target_fd is not None else None
        if target_mode is None and target in self._skipped:  # a link to a skipped device node
            self._skip(relative)
            return
        if target_mode is None or stat.S_ISDIR(target_mode):
            raise LayerError(
                f"layer {layer}: hard link {relative!r} points at {member.linkname!r}, which is "
                "not a file in the image",
                layer=layer,
                entry=relative,
            )
        target_fd = os.dup(target_fd)  # the walk below may close the cached one
        try:
            parent, name = _split(relative)
            parent_fd = self._dir(parent, relative, layer)
            self._remove_at(parent_fd, name, relative)
            try:
                os.link(target_name, name, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise LayerError(
                    f"layer {layer}: hard link {relative!r} replaced its own target {member.linkname!r}",
                    layer=layer,
                    entry=relative,
                ) from None
        finally:
            os.close(target_fd)

    def _attributes(self, fd: int, member: tarfile.TarInfo, times: bool = True) -> None:
        """Owner, mode and time of a file or directory the applier opened itself."""
        if not self.rootless:
            try:
                os.chown(fd, member.uid, member.gid)
            except OSError:
                pass
        os.chmod(fd, stat.S_IMODE(member.mode))  # after chown: chown clears setuid/setgid bits
        if times:
            os.utime(fd, (member.mtime, member.mtime))

    def _symlink_attributes(self, parent_fd: int, name: str, member: tarfile.TarInfo) -> None:
        """Owner and time of the symlink itself; symlinks have no mode of their own."""
        if not self.rootless:
            try:
                os.chown(name, member.uid, member.gid, dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                pass
        try:
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent_fd, follow_symlinks=False)
        except (NotImplementedError, OSError):
            pass
