# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Entering containers for the `armoredgate.volt.volt` connection plugin.

Files go through the container's root filesystem on its host (no process inside the container
is needed, and it is fast); commands run through the backend's exec_command, as volt_exec does.
On a remote container host the plugin runs this file over SSH:

    python3 -m ansible_collections.armoredgate.volt.plugins.module_utils._enter \\
        --backend B --data-dir D --name N  exec -- ARGV... | put PATH | fetch PATH
        --backend B --data-dir D list

`exec` replaces itself with the entry command, so stdin, stdout and stderr flow straight
through; `put` reads the file from stdin and `fetch` writes it to stdout; `list` prints the
host's containers as JSON (for the volt_containers inventory plugin).
"""

from __future__ import annotations

import os
import stat
import sys

from ansible_collections.armoredgate.volt.plugins.module_utils import _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import validate_name

_CHUNK = 1024 * 1024
# Exit code when the container could not be entered at all (as docker exec's 125).
ENTRY_FAILED = 125


def guest_file(rootfs: str, path: str, for_writing: bool) -> str:
    """Host path of the container's `path`, resolved inside rootfs (symlinks never lead out)."""
    if not path.startswith("/"):
        raise VoltError(f"path {path!r} in the container must be absolute")
    parent = _rootfs.resolve_in_root(rootfs, os.path.dirname(path))
    if parent is None or not os.path.isdir(parent):
        raise VoltError(f"directory {os.path.dirname(path)!r} does not exist in the container")
    target = os.path.join(parent, os.path.basename(path))
    if os.path.islink(target):
        target = _rootfs.resolve_in_root(rootfs, path) or ""
        if not target:
            raise VoltError(f"{path!r} in the container is a symlink to nothing")
    if not for_writing and not os.path.isfile(target):
        raise VoltError(f"file {path!r} does not exist in the container")
    if for_writing and os.path.isdir(target):
        raise VoltError(f"{path!r} in the container is a directory")
    return target


def container_rootfs(backend, name: str) -> str:
    """The root filesystem of container name on this host (it need not be running)."""
    record = backend.inspect(validate_name(name))
    if record is None:
        raise VoltError(f"container {name} does not exist")
    return record.rootfs


def write_guest_file(rootfs: str, path: str, source) -> None:
    """Copy the binary stream source to the container's path: a new file, renamed into place."""
    import tempfile  # noqa: PLC0415

    target = guest_file(rootfs, path, for_writing=True)
    fd, temporary = tempfile.mkstemp(prefix=".volt-put-", dir=os.path.dirname(target))
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in iter(lambda: source.read(_CHUNK), b""):
                handle.write(chunk)
        mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.exists(target) else 0o644
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def read_guest_file(rootfs: str, path: str, sink) -> None:
    with open(guest_file(rootfs, path, for_writing=False), "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sink.write(chunk)


def main(argv: list[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import (  # noqa: PLC0415
        select_backend,
    )
    from ansible_collections.armoredgate.volt.plugins.module_utils._runner import Runner  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="volt-enter")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--data-dir")
    parser.add_argument("--proot-path")
    parser.add_argument("--name")
    parser.add_argument("--user")
    parser.add_argument("action", choices=["exec", "put", "fetch", "list"])
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        backend = select_backend(args.backend, Runner(), args.data_dir, {"proot_path": args.proot_path})
        if args.action == "list":
            import json  # noqa: PLC0415

            sys.stdout.write(json.dumps([record.to_result() for record in backend.list()]) + "\n")
            return 0
        name = validate_name(args.name or "")
        operands = args.args[1:] if args.args[:1] == ["--"] else args.args
        if args.action == "exec":
            host_argv, env = backend.exec_command(name, operands, user=args.user)
            sys.stdout.flush()
            os.execve(host_argv[0], host_argv, env)
        if len(operands) != 1:
            raise VoltError(f"{args.action} takes one path, got {operands!r}")
        rootfs = container_rootfs(backend, name)
        if args.action == "put":
            write_guest_file(rootfs, operands[0], sys.stdin.buffer)
        else:
            read_guest_file(rootfs, operands[0], sys.stdout.buffer)
    except (VoltError, OSError) as exc:
        sys.stderr.write(f"volt: {getattr(exc, 'msg', exc)}\n")
        return ENTRY_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
