# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Root filesystems: clone, remove, look inside without leaving the root."""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _guest_path

# The seed's detection order: an init, nginx in the foreground, an image entrypoint script, python.
ENTRYPOINT_CANDIDATES: tuple[tuple[str, ...], ...] = (
    ("/init",),
    ("/usr/sbin/nginx", "-g", "daemon off; master_process off;"),
    ("/docker-entrypoint.sh",),
    ("/usr/local/bin/python3",),
    ("/usr/bin/python3",),
    ("/bin/sh",),
)
_MAX_SYMLINKS = 40


def resolve_in_root(root: str, path: str) -> str | None:
    """Host path of `path` as the guest sees it, following symlinks without leaving root.

    An absolute link target is taken relative to root, and '..' stops at root, exactly as
    inside the container; a host-side os.path.realpath would wander onto the host.
    Returns None when the path does not exist.
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except OSError:
            return None
        if stat.S_ISLNK(mode):
            hops += 1
            if hops > _MAX_SYMLINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def is_executable_file(root: str, path: str) -> bool:
    host_path = resolve_in_root(root, path)
    if host_path is None:
        return False
    try:
        mode = os.stat(host_path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & 0o111)


def find_program(root: str, program: str, search_path: str, workdir: str = "/") -> bool:
    """Whether the guest finds `program` as an executable file: a name on search_path (a PATH),
    a path with a '/' from workdir."""
    if "/" in program:
        return is_executable_file(root, os.path.join(workdir, program))
    return any(is_executable_file(root, os.path.join(d, program)) for d in search_path.split(":") if d)


def detect_entrypoint(root: str) -> list[str] | None:
    """The first entrypoint candidate present in the rootfs, with its arguments."""
    for candidate in ENTRYPOINT_CANDIDATES:
        if is_executable_file(root, candidate[0]):
            return list(candidate)
    return None


def os_release(root: str) -> str | None:
    """PRETTY_NAME from the rootfs's os-release, read from the host (no proot on this path)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = _guest_path.read_text(root, path, limit=64 * 1024)
        for line in (text or "").splitlines():
            key, _sep, value = line.strip().partition("=")
            if key == "PRETTY_NAME":
                return value.strip().strip("\"'") or None
    return None


def clone_tree(runner, source: str, dest: str) -> None:
    """Copy source's contents into the new directory dest, as `cp -a --reflink=auto` does.

    cp preserves modes, owners, times, hard links and xattrs and never follows symlinks inside
    the source; nothing in Python's standard library does all of that. Busybox cp (some Android
    shells) has no --reflink, so a plain `cp -a` is the fallback.
    """
    if not os.path.isdir(source):
        raise VoltError(f"rootfs source {source} is not a directory", path=source)
    cp = runner.which("cp")
    if cp is None:
        raise VoltError("cp is required to clone a root filesystem but was not found on PATH")
    rc, _out, err = runner.run([cp, "-a", "--reflink=auto", source + "/.", dest], check=False)
    if rc != 0 and "reflink" in err:
        rc, _out, err = runner.run([cp, "-a", source + "/.", dest], check=False)
    # Without root, device nodes cannot be made (proot binds the host's /dev over them anyway);
    # cp copies everything else and reports each one.
    problems = [line for line in err.splitlines() if line.strip() and "cannot create special file" not in line]
    if rc != 0 and not problems and os.geteuid() != 0:
        runner.warn(f"{len(err.splitlines())} device node(s) of {source} were not copied (not root)")
    elif rc != 0:
        raise VoltError(
            f"copying {source} to {dest} failed: {err.strip()}",
            cmd=[cp, "-a", "--reflink=auto", source + "/.", dest],
            rc=rc,
            stderr=err,
        )


def sanitize_tree(path: str, strip_setid: bool) -> int:
    """Remove device nodes from a fresh tree (and, if asked, setuid/setgid bits); returns how
    many entries were changed.

    A device node chosen by an image author would be open to whoever reaches the tree (proot binds
    the host's /dev and nspawn makes its own, so containers never need them). Walks without
    following symlinks; the tree is not yet visible to any guest.
    """
    changed = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for filename in filenames:
            child = os.path.join(dirpath, filename)
            mode = os.lstat(child).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.unlink(child)
                changed += 1
            elif strip_setid and stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(child, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
                changed += 1
    return changed


def _make_directories_writable(path: str) -> None:
    os.chmod(path, stat.S_IRWXU)
    for dirpath, dirnames, _files in os.walk(path):  # top-down: fix children before entering them
        for dirname in dirnames:
            child = os.path.join(dirpath, dirname)
            if not os.path.islink(child):
                os.chmod(child, stat.S_IRWXU | stat.S_IMODE(os.lstat(child).st_mode))


def remove_tree(path: str) -> None:
    """Remove a tree, even one where the guest left directories without write permission."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        _make_directories_writable(path)
        shutil.rmtree(path)


@contextmanager
def staged(parent: str, label: str, mode: int) -> Iterator[str]:
    """A hidden directory in parent (.<label>.creating-*) to build a tree in, which the caller
    renames into place: readers never see half a tree, and a failure inside the block removes
    what was built (nothing, once it was renamed)."""
    import tempfile

    staging = tempfile.mkdtemp(prefix=f".{label}.creating-", dir=parent)
    try:
        os.chmod(staging, mode)
        yield staging
    except BaseException:
        remove_tree(staging)
        raise


def remove_aside(path: str, label: str) -> None:
    """Remove a tree by renaming it first into a hidden directory beside it (.<label>.removing-*):
    its path is free at once, and an interrupted removal leaves only a hidden directory that
    listings skip."""
    if not os.path.lexists(path):
        return
    import tempfile

    doomed = tempfile.mkdtemp(prefix=f".{label}.removing-", dir=os.path.dirname(path))
    os.rename(path, os.path.join(doomed, os.path.basename(path)))
    remove_tree(doomed)


# The largest uid/gid Linux accepts ((uid_t)-1 means "no change" to chown and setresuid).
MAX_ID = 2**32 - 2


def resolve_user(root: str, user: str) -> tuple[int, int, str]:
    """(uid, gid, home) of `user` ("user" or "user:group", each a name or a number, as Docker
    takes it) from the root's /etc/passwd and /etc/group: the guest's files, read as data."""
    uid_text, sep, group_text = str(user).partition(":")
    for part in (uid_text, group_text) if sep else (uid_text,):
        if (
            not part
            or (part.isdigit() and int(part) > MAX_ID)
            or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*", part)
        ):
            raise VoltError(f"user {user!r} is not a user or user:group, each a name or an id (0-{MAX_ID})", user=user)
    found = None
    for fields in _id_file(root, "/etc/passwd", 7):
        if fields[0] == uid_text or (uid_text.isdigit() and fields[2] == uid_text):
            found = int(fields[2]), int(fields[3]), fields[5] or "/"
            break
    if found is None and uid_text == "root":
        found = 0, 0, "/root"  # uid 0 is root, with or without a passwd file
    if found is None and not uid_text.isdigit():
        raise VoltError(
            f"user {user!r}: {uid_text!r} is not in the container's /etc/passwd; give a numeric uid", user=user
        )
    uid, gid, home = found or (int(uid_text), int(uid_text), "/")
    if group_text.isdigit():
        gid = int(group_text)
    elif group_text:
        groups = [fields for fields in _id_file(root, "/etc/group", 4) if fields[0] == group_text]
        if not groups:
            raise VoltError(f"user {user!r}: group {group_text!r} is not in the container's /etc/group", user=user)
        gid = int(groups[0][2])
    return uid, gid, home


def passwd_entries(root: str) -> list[list[str]]:
    """The guest's /etc/passwd lines (with numeric uid and gid), split into their fields."""
    return _id_file(root, "/etc/passwd", 7)


def _id_file(root: str, path: str, fields: int) -> list[list[str]]:
    """The lines of the guest's passwd or group file with numeric ids (a broken line is no answer)."""
    text = _guest_path.read_text(root, path) or ""
    entries = [line.split(":") for line in text.splitlines() if line.count(":") >= fields - 1]
    numeric = (2, 3) if fields == 7 else (2,)
    return [entry for entry in entries if all(entry[i].isdigit() and int(entry[i]) <= MAX_ID for i in numeric)]
