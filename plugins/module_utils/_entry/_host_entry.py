# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entering containers for the `armoredgate.volt.volt` connection plugin.

Files go through the container's root filesystem on its host (no process inside the container
is needed, and it is fast); commands run through the backend's exec_command, as volt_exec does.
On a remote container host the plugin runs this file over SSH:

    python3 -m ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry \\
        --backend B --data-dir D --name N [--user U]  exec -- ARGV... | fetch [--stage] PATH
        --backend B --data-dir D --name N [--user U] --size S [--staged T]  put PATH
        --backend B --data-dir D --name N [--user U] --stage  put PATH
        --backend B --data-dir D  list | unstage T

`exec` replaces itself with the entry command (run as U, in start_directory), so stdin,
stdout and stderr flow straight through; `put` reads the file's S bytes from stdin (a new file
is U's) and `fetch` writes it to stdout; `list` prints the host's containers as JSON (for the
volt_containers inventory plugin).

Large files go through a staging file instead, which the plugin copies with the SSH
connection's own file transfer: `put --stage` checks PATH can be written and prints the path
of a new staging file (in a private directory T), `put --staged T` copies that file's S bytes
into the container and removes T; `fetch --stage` copies PATH into a new staging file and prints
its path; `unstage T` removes T.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from typing import Iterator

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _guest_path, _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._files._guest_path import GuestPathError, Location
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import validate_name

_CHUNK = 1024 * 1024
# Exit code when the container could not be entered at all (as docker exec's 125).
ENTRY_FAILED = 125
# Staging files of large transfers, in the SSH user's home: /tmp may be a tmpfs, which would
# hold them in memory. One private directory per transfer; those a day old were left by a
# controller that died mid-transfer.
STAGING = "~/.ansible/volt/transfers"
STAGED_FILE = "data"
_STALE_SECONDS = 24 * 3600


def guest_file(rootfs: str, path: str, for_writing: bool) -> str:
    """Host path of the container's `path`, resolved inside rootfs (symlinks never lead out).

    For messages only: the guest can change what a name means at any time, so files are
    written and read through write_guest_file and read_guest_file, which hold directories open.
    """
    with _located(rootfs, path, for_writing) as (location, _status):
        return os.path.join(rootfs, location.guest.lstrip("/"))


@contextlib.contextmanager
def _located(rootfs: str, path: str, for_writing: bool) -> Iterator[tuple[Location, os.stat_result | None]]:
    """The open location of the container's `path` and the status of what is there now."""
    if not path.startswith("/"):
        raise VoltError(f"path {path!r} in the container must be absolute")
    root_fd = _guest_path.open_root(rootfs)
    try:
        location = _locate(root_fd, path)
    finally:
        os.close(root_fd)
    with location:
        status = _status(location)
        if status is None and location.linked:
            raise VoltError(f"{path!r} in the container is a symlink to nothing")
        if status is None and not for_writing:
            raise VoltError(f"file {path!r} does not exist in the container")
        if status is not None and stat.S_ISDIR(status.st_mode):
            raise VoltError(f"{path!r} in the container is a directory")
        yield location, status


def _locate(root_fd: int, path: str) -> Location:
    try:
        return _guest_path.locate(root_fd, path)
    except GuestPathError as exc:
        if exc.errno == errno.ELOOP:
            raise VoltError(f"{path!r} in the container: too many levels of symbolic links") from None
        if exc.linked:
            raise VoltError(f"{path!r} in the container is a symlink to nothing") from None
        raise VoltError(f"directory {os.path.dirname(path)!r} does not exist in the container") from None


def _status(location: Location) -> os.stat_result | None:
    try:
        return os.stat(location.name or ".", dir_fd=location.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _record(backend, name: str):
    record = backend.inspect(validate_name(name))
    if record is None:
        raise VoltError(f"container {name} does not exist in {backend.data_dir} (backend {backend.name})")
    return record


def container_rootfs(backend, name: str) -> str:
    """The root filesystem of container name on this host (it need not be running)."""
    return _record(backend, name).rootfs


def start_directory(backend, name: str, user: str | None) -> str | None:
    """Where a command of the connection starts: the container's working directory when it sets
    one (its workdir option, else its image's WorkingDir), as docker exec does; else the home
    directory of the user it runs as when that is a directory in the container, as over SSH;
    else None (the backend's default, /)."""
    record = _record(backend, name)
    image = record.config.get("image_config") or {}
    if record.config.get("workdir") or image.get("workdir"):
        return None
    _uid, _gid, home = backend.exec_user(record.rootfs, user, record.config)
    resolved = _rootfs.resolve_in_root(record.rootfs, home)
    return home if resolved is not None and os.path.isdir(resolved) else None


def container_owner(backend, name: str, user: str | None) -> tuple[str, tuple[int, int]]:
    """(root filesystem, (uid, gid)) of container name for files user puts there: user as
    exec_command resolves it (None: the container's own user)."""
    record = _record(backend, name)
    uid, gid, _home = backend.exec_user(record.rootfs, user, record.config)
    return record.rootfs, (uid, gid)


def write_guest_file(rootfs: str, path: str, source, owner: tuple[int, int] | None = None) -> None:
    """Copy the binary stream source to the container's path: a new file, renamed into place.

    The temporary file is made in the directory already open, and renamed within it, so a
    directory swapped for a symlink meanwhile changes nothing. It keeps an existing file's mode
    and owner, as writing into it would; a new file is 0644 and owned by owner (uid, gid) when
    given. A host user other than root cannot give files away: its files stay its own (proot
    shows them as owned by whoever looks).
    """
    with _located(rootfs, path, for_writing=True) as (location, status):
        mode, replaced = 0o644, status is not None and stat.S_ISREG(status.st_mode)
        if replaced:
            mode, owner = stat.S_IMODE(status.st_mode), (status.st_uid, status.st_gid)
        temporary, fd = _create_temporary(location.dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    handle.write(chunk)
                if owner is not None:
                    with contextlib.suppress(PermissionError):
                        os.fchown(handle.fileno(), *owner)
                os.fchmod(handle.fileno(), mode)
            os.replace(temporary, location.name, src_dir_fd=location.dir_fd, dst_dir_fd=location.dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=location.dir_fd)
            raise


def _create_temporary(dir_fd: int) -> tuple[str, int]:
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    for _attempt in range(100):
        name = ".volt-put-" + os.urandom(6).hex()
        try:
            return name, os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise VoltError("no unused temporary file name in the container's directory")


class Exactly:
    """The first size bytes of a binary stream, as a stream: fewer is an error (the transfer
    broke), and nothing is read past them (an SSH stdin that is a terminal never ends)."""

    def __init__(self, stream, size: int) -> None:
        self._stream, self._size, self._left = stream, size, size

    def read(self, limit: int) -> bytes:
        if self._left <= 0:
            return b""
        chunk = self._stream.read(min(limit, self._left))
        if not chunk:
            raise VoltError(f"the file's data ended after {self._size - self._left} of {self._size} bytes")
        self._left -= len(chunk)
        return chunk


def staging_directory() -> str:
    """A new private (0700) directory for one transfer's staging file; its path."""
    root = os.path.expanduser(STAGING)
    os.makedirs(root, mode=0o700, exist_ok=True)
    _remove_stale(root)
    return tempfile.mkdtemp(prefix="volt-", dir=root)


def _remove_stale(root: str) -> None:
    limit = time.time() - _STALE_SECONDS
    for name in os.listdir(root):
        directory = os.path.join(root, name)
        with contextlib.suppress(OSError):
            entries = [directory] + [os.path.join(directory, entry) for entry in os.listdir(directory)]
            if max(os.lstat(entry).st_mtime for entry in entries) < limit:
                shutil.rmtree(directory)


def staged_directory(name: str) -> str:
    """The staging directory name (only one staging_directory made: nothing else is removed)."""
    if not re.fullmatch(r"volt-[A-Za-z0-9_]+", name):
        raise VoltError(f"{name!r} is not a staging directory")
    return os.path.join(os.path.expanduser(STAGING), name)


def remove_staged(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(staged_directory(name))


def put_staged(rootfs: str, path: str, name: str, size: int, owner: tuple[int, int] | None) -> None:
    """Copy staging directory name's file, of size bytes, to the container's path."""
    fd = os.open(os.path.join(staged_directory(name), STAGED_FILE), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode) or status.st_size != size:
            raise VoltError(f"the staged file has {status.st_size} bytes, not the file's {size}")
        write_guest_file(rootfs, path, Exactly(handle, size), owner)


def fetch_staged(rootfs: str, path: str) -> str:
    """Copy the container's file at path to a new staging file; its path."""
    directory = staging_directory()
    try:
        staged = os.path.join(directory, STAGED_FILE)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(staged, flags, 0o600), "wb") as sink:
            read_guest_file(rootfs, path, sink)
        return staged
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise


def read_guest_file(rootfs: str, path: str, sink) -> None:
    """Copy the container's regular file at path to the binary stream sink."""
    with _located(rootfs, path, for_writing=False) as (location, _status):
        try:
            fd = _guest_path.open_regular(location)
        except IsADirectoryError:
            raise VoltError(f"{path!r} in the container is a directory") from None
        except FileNotFoundError:
            raise VoltError(f"file {path!r} does not exist in the container") from None
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EINVAL):
                raise
            raise VoltError(f"{path!r} in the container is not a regular file") from None
    with os.fdopen(fd, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sink.write(chunk)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import make_backend
    from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

    parser = argparse.ArgumentParser(prog="volt-enter")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--data-dir")
    parser.add_argument("--proot-path")
    parser.add_argument("--name")
    parser.add_argument("--user")
    parser.add_argument("--size", type=int, help="put: the file's size in bytes (its data on stdin)")
    parser.add_argument("--stage", action="store_true", help="put, fetch: through a new staging file")
    parser.add_argument("--staged", help="put: from this staging directory's file (removed afterwards)")
    parser.add_argument("action", choices=["exec", "put", "fetch", "list", "unstage"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    operands = args.args[1:] if args.args[:1] == ["--"] else args.args
    try:
        if args.action == "unstage":
            for staged in operands:
                remove_staged(staged)
            return 0
        try:
            return _run(make_backend(Runner(), vars(args)), args, operands)
        finally:
            if args.staged:
                remove_staged(args.staged)
    except (VoltError, OSError) as exc:
        sys.stderr.write(f"volt: {getattr(exc, 'msg', exc)}\n")
        return ENTRY_FAILED


def _run(backend, args, operands: list[str]) -> int:
    if args.action == "list":
        import json

        sys.stdout.write(json.dumps([record.to_result() for record in backend.list()]) + "\n")
        return 0
    name = validate_name(args.name or "")
    if args.action == "exec":
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._exec import run_in_container
        from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

        cwd = start_directory(backend, name, args.user)
        # Not exec'd: this returns when the command ends, not when the last process that holds
        # its output (a job it put in the background) does.
        rc, out, err, _timed_out = run_in_container(
            backend, Runner(), name, operands, cwd=cwd, user=args.user, inherit_stdin=True
        )
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        sys.stderr.buffer.write(err)
        sys.stderr.flush()
        return rc
    if len(operands) != 1:
        raise VoltError(f"{args.action} takes one path, got {operands!r}")
    path = operands[0]
    if args.action == "put":
        rootfs, owner = container_owner(backend, name, args.user)
        if args.stage:  # fails now rather than after the upload when path cannot be written
            guest_file(rootfs, path, for_writing=True)
            _print_path(os.path.join(staging_directory(), STAGED_FILE))
        elif args.staged:
            if args.size is None:
                raise VoltError("put --staged needs --size")
            put_staged(rootfs, path, args.staged, args.size, owner)
        else:
            source = sys.stdin.buffer if args.size is None else Exactly(sys.stdin.buffer, args.size)
            write_guest_file(rootfs, path, source, owner)
    elif args.stage:
        _print_path(fetch_staged(container_rootfs(backend, name), path))
    else:
        read_guest_file(container_rootfs(backend, name), path, sys.stdout.buffer)
    return 0


def _print_path(path: str) -> None:
    sys.stdout.buffer.write(os.fsencode(path) + b"\n")


if __name__ == "__main__":
    raise SystemExit(main())
