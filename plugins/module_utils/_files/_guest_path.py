# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Paths inside a container's root filesystem, walked by file descriptors from the host.

A process in the container can change its files while the host works on them: check a path,
then use it by name, and a directory swapped for a symlink in between sends the host elsewhere.
So every step here is taken from an open directory: each component is opened with O_NOFOLLOW
relative to the directory before it, a symlink is read and resolved as the guest sees it (an
absolute target restarts at the root, '..' stops at the root, as chroot and openat2's
RESOLVE_IN_ROOT do), and '..' pops a directory already held instead of opening '..'. Whatever
the guest renames meanwhile, the host only ever holds directories inside the root.
"""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINKS = 40  # as the kernel's ELOOP limit

# O_PATH opens a directory for *at() calls without needing read permission on it.
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class GuestPathError(OSError):
    """A path that does not resolve; `linked` when the failure lies beyond the path's last
    component being a symlink (the link points to nothing), not on the way to it."""

    def __init__(self, code: int, path: str, linked: bool = False) -> None:
        super().__init__(code, os.strerror(code), path)
        self.linked = linked


class Location:
    """A name in an open directory of the root: what a guest path resolved to.

    `name` is "" when the path is the directory itself. `guest` is the resolved path as the
    guest sees it, for messages. Close it (or use `with`) to release the directory.
    """

    def __init__(self, dir_fd: int, name: str, guest: str, linked: bool) -> None:
        self.dir_fd, self.name, self.guest, self.linked = dir_fd, name, guest, linked

    def close(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_root(root: str) -> int:
    """A directory fd of root. Root itself is trusted (the host chose it); a symlink is refused."""
    return os.open(root, _DIR_FLAGS)


def _split(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part]
    if parts and path.endswith("/"):
        parts.append(".")  # a trailing slash: the last name must be a directory
    return parts


def _open_dir(dir_fd: int, name: str) -> int | str:
    """An fd of the directory `name` in dir_fd, or the target when `name` is a symlink."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        # A symlink fails with ELOOP (or ENOTDIR with O_PATH); so does a file.
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        target = _readlink(dir_fd, name)
        if target is None:
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)) from None
        return target


def _readlink(dir_fd: int, name: str) -> str | None:
    """The target of symlink `name` in dir_fd; None when it is something else or nothing."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOENT):
            return None
        raise


def locate(root_fd: int, path: str, follow: bool = True) -> Location:
    """Resolve the guest's `path` from root_fd to (open directory, last name).

    Every directory on the way must exist (symlinks are followed inside the root). With
    `follow`, a last component that is a symlink is resolved too, so the returned name is never
    a symlink at the time of the walk; the name itself need not exist. Raises GuestPathError.
    """
    walk = _Walk(root_fd)
    pending = _split(path)
    hops = 0
    linked = False  # resolving the target of the path's own last component
    try:
        while pending:
            part = pending.pop(0)
            if part in (".", ".."):
                walk.up(part)
                continue
            if pending:
                found = _step(walk, part, linked)
            else:
                found = _readlink(walk.fd, part) if follow else None
                if found is None:
                    return walk.detach(part, linked)
                linked = True
            if isinstance(found, int):
                walk.down(found, part)
                continue
            hops += 1
            if hops > MAX_SYMLINKS:
                raise GuestPathError(errno.ELOOP, path, linked)
            if found.startswith("/"):
                walk.to_root()
            pending = _split(found) + pending
        return walk.detach("", linked)
    finally:
        walk.close()


class _Walk:
    """The directories walked so far, each held open; stack[0] is the root."""

    def __init__(self, root_fd: int) -> None:
        self.stack = [os.dup(root_fd)]
        self.names: list[str] = []

    @property
    def fd(self) -> int:
        return self.stack[-1]

    def guest(self, *more: str) -> str:
        return "/" + "/".join([*self.names, *more])

    def down(self, fd: int, name: str) -> None:
        self.stack.append(fd)
        self.names.append(name)

    def up(self, part: str) -> None:
        # '..' pops a directory already held (never above the root); '.' stays.
        if part == ".." and len(self.stack) > 1:
            os.close(self.stack.pop())
            self.names.pop()

    def to_root(self) -> None:
        while len(self.stack) > 1:
            self.up("..")

    def detach(self, name: str, linked: bool) -> Location:
        """The current directory, handed over to a Location (name in it, or "" for itself)."""
        guest = self.guest(name) if name else self.guest()
        return Location(self.stack.pop(), name, guest, linked)

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop())


def _step(walk: _Walk, part: str, linked: bool) -> int | str:
    try:
        return _open_dir(walk.fd, part)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise GuestPathError(exc.errno, walk.guest(part), linked) from None
        raise


def open_regular(location: Location) -> int:
    """A read-only fd of the regular file at location, without opening anything else.

    A FIFO would block and a device node (a guest with CAP_MKNOD can make one) would read the
    host's device, so the name is first opened with O_PATH, checked, and only then reopened.
    """
    name = location.name or "."
    path_flags = getattr(os, "O_PATH", 0)
    if not path_flags:
        return _open_checked(location.dir_fd, name)
    fd = os.open(name, path_flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=location.dir_fd)
    try:
        _require_regular(fd)
        try:
            # Reopen the very inode checked; /proc may be missing (then check after opening).
            return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return _open_checked(location.dir_fd, name)
    finally:
        os.close(fd)


def _open_checked(dir_fd: int, name: str) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=dir_fd)
    try:
        _require_regular(fd)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _require_regular(fd: int) -> None:
    mode = os.fstat(fd).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))
    if stat.S_ISLNK(mode):  # replaced by a symlink after the walk: the guest is racing us
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
    if not stat.S_ISREG(mode):
        raise OSError(errno.EINVAL, "not a regular file")


def read_text(root: str, path: str, limit: int = 1024 * 1024) -> str | None:
    """The first `limit` bytes of the guest's regular file `path` as text; None when it does
    not resolve to a regular file inside root (host-side reads of guest files such as
    /etc/passwd and /etc/os-release)."""
    try:
        root_fd = open_root(root)
    except OSError:
        return None
    try:
        with locate(root_fd, path) as location:
            fd = open_regular(location)
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(root_fd)


def make_mount_point(root: str, path: str, directory: bool = True) -> None:
    """Create the guest's `path` (and the directories on the way) inside root where missing:
    directories 0755 and a file 0644, as a bind needs them (proot would make its own mode 0000).
    Each name is made in a directory opened inside the root; an existing name is left as it is."""
    parts = [part for part in path.split("/") if part and part != "."]
    root_fd = open_root(root)
    try:
        for index in range(len(parts)):
            last = index == len(parts) - 1
            with locate(root_fd, "/" + "/".join(parts[: index + 1])) as location:
                if not location.name:
                    continue  # the root itself, or '..' at the top
                try:
                    os.lstat(location.name, dir_fd=location.dir_fd)
                    continue
                except FileNotFoundError:
                    pass
                if directory or not last:
                    os.mkdir(location.name, 0o755, dir_fd=location.dir_fd)
                    os.chmod(location.name, 0o755, dir_fd=location.dir_fd, follow_symlinks=False)
                else:
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    os.close(os.open(location.name, flags, 0o644, dir_fd=location.dir_fd))
    finally:
        os.close(root_fd)


def replace_file(location: Location, content: str) -> None:
    """Put a new regular file (0644) with content at location's name, atomically: written beside
    it under a random name in the same open directory, then renamed over it."""
    temporary = f".volt-new-{os.urandom(6).hex()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o644, dir_fd=location.dir_fd)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            os.fchmod(handle.fileno(), 0o644)
        os.replace(temporary, location.name, src_dir_fd=location.dir_fd, dst_dir_fd=location.dir_fd)
    except BaseException:
        try:
            os.unlink(temporary, dir_fd=location.dir_fd)
        except OSError:
            pass
        raise


def write_file(root: str, path: str, content: str, replace: bool) -> bool:
    """Write the guest's file `path` inside root (mode 0644), its directory already there:
    created when missing, or replaced when `replace`. A name that resolves to anything but a
    regular file is left alone. True if it wrote."""
    root_fd = open_root(root)
    try:
        with locate(root_fd, path) as location:
            if not location.name:
                return False
            try:
                mode = os.lstat(location.name, dir_fd=location.dir_fd).st_mode
            except FileNotFoundError:
                mode = None
            if mode is not None and (not replace or not stat.S_ISREG(mode)):
                return False
            replace_file(location, content)
            return True
    except OSError:
        return False  # the guest's tree is the guest's: a path that does not resolve is not ours to fix
    finally:
        os.close(root_fd)
