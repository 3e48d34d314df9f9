# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""volt_exec: run one command in a running container, through the backend's exec_command."""

from __future__ import annotations

import datetime
import os
from typing import TYPE_CHECKING

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import GUEST_PATH
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import Launch
from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import absolute_path, validate_name

if TYPE_CHECKING:
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import Backend
    from ansible_collections.armoredgate.volt.plugins.module_utils._types import CommandRunner


def command_argv(params: dict) -> list[str]:
    """argv as given, or cmd split shell-style (never run by a shell)."""
    if params.get("argv") is not None:
        argv = [str(arg) for arg in params["argv"]]
    else:
        import shlex

        try:
            argv = shlex.split(params.get("cmd") or "")
        except ValueError as exc:
            raise VoltError(f"cmd {params.get('cmd')!r} cannot be split into arguments: {exc}") from None
    if not argv or not argv[0]:
        raise VoltError("argv or cmd must name a program to run")
    return argv


def run_in_container(
    backend: Backend,
    runner: CommandRunner,
    name: str,
    argv: list[str],
    *,
    cwd: str | None = None,
    user: str | None = None,
    env: dict | None = None,
    stdin: bytes | None = None,
    timeout: float | None = None,
    inherit_stdin: bool = False,
) -> tuple[int, bytes, bytes, bool]:
    """Run argv in a running container until its own process ends, as docker exec does: what it
    leaves in the background keeps running in the container until that ends or the container
    stops. A timeout ends everything the command started. (rc, stdout, stderr, timed_out)."""
    status = _status_pipe() if backend.exec_reports_status else None
    try:
        extra = {"status_fd": status[1]} if status else {}
        host_argv, environment = backend.exec_command(name, argv, cwd=cwd, user=user, env=env, **extra)
    except BaseException:
        if status:
            os.close(status[0])
            os.close(status[1])
        raise
    if status and not backend.exec_detached:  # no shell in the guest to report the status
        os.close(status[0])
        os.close(status[1])
        status = None
    rc, out, err, timed_out = runner.execute(
        host_argv,
        environment,
        stdin,
        timeout,
        # proot without a status waits for every process it traces: the command's end ends the call.
        kill_on_exit=backend.name == "proot" and status is None,
        on_exit=backend.end_exec if backend.exec_scope else None,
        status=status,
        inherit_stdin=inherit_stdin,
    )
    return rc, out, err, timed_out


def _status_pipe() -> tuple[int, int]:
    """A pipe; its write end with a one-digit number where one is free (what dash's redirections
    take; see the proot backend's exec_command for the others)."""
    import fcntl

    read_end, write_end = os.pipe()
    low = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 3)  # atomic: the lowest free fd from 3
    if low <= 9:
        os.close(write_end)
        return read_end, low
    os.close(low)
    return read_end, write_end


class Execution:
    """Plans and runs one volt_exec call; returns the module's result or raises VoltError."""

    def __init__(self, backend: Backend, runner: CommandRunner, params: dict, check_mode: bool) -> None:
        self.backend, self.runner, self.params, self.check_mode = backend, runner, params, check_mode

    def _guest_path_exists(self, rootfs: str, workdir: str, path: str) -> bool:
        return _rootfs.resolve_in_root(rootfs, os.path.join(workdir, path)) is not None

    @staticmethod
    def _is_guest_directory(rootfs: str, path: str) -> bool:
        resolved = _rootfs.resolve_in_root(rootfs, path)
        return resolved is not None and os.path.isdir(resolved)

    def run(self) -> tuple[dict, str | None]:
        """(result, failure message or None)."""
        params = self.params
        name = validate_name(params["name"])
        argv = command_argv(params)
        env = _options.normalize("env", params.get("env") or {})
        chdir = absolute_path(params["chdir"], "chdir") if params.get("chdir") else None
        timeout = params.get("timeout") or 0
        if timeout < 0:
            raise VoltError(f"timeout must be 0 (none) or more seconds, got {timeout}")
        record = self.backend.inspect(name)
        if record is None:
            raise self.backend.cannot_enter(name)
        result = {"changed": False, "cmd": argv, "rc": 0, "stdout": "", "stderr": ""}
        # creates/removes are paths in the container, read through its rootfs from the host.
        workdir = chdir or Launch(record.config).workdir
        for option, skip_if_exists in (("creates", True), ("removes", False)):
            path = params.get(option)
            if path and self._guest_path_exists(record.rootfs, workdir, path) is skip_if_exists:
                verb = "exists" if skip_if_exists else "does not exist"
                result["stdout"] = f"skipped, since {path} {verb}"
                return dict(result, stdout_lines=[result["stdout"]], stderr_lines=[]), None
        if record.status != "running":
            raise self.backend.cannot_enter(name)
        if chdir and not self._is_guest_directory(record.rootfs, chdir):
            # proot would silently run the command in / instead.
            raise VoltError(f"chdir {chdir!r} is not a directory in container {name}")
        search = {**self.backend.guest_env(name, record.config), **env}.get("PATH", GUEST_PATH)
        if not _rootfs.find_program(record.rootfs, argv[0], search, workdir):
            # Nothing ran: the same answer on every backend (a shell's 127), before anything starts.
            message = f"{argv[0]!r} is not an executable file in container {name} (searched PATH {search})"
            return dict(result, rc=127, stderr=message, stdout_lines=[], stderr_lines=[message]), message
        if self.check_mode:
            return dict(result, changed=True, msg="check mode: the command would run", rc=None), None
        stdin = params.get("stdin")
        if stdin is not None and params.get("stdin_add_newline", True):
            stdin += "\n"
        began = datetime.datetime.now()
        rc, out, err, timed_out = run_in_container(
            self.backend,
            self.runner,
            name,
            argv,
            cwd=chdir,
            user=params.get("user"),
            env=env,
            stdin=stdin.encode() if stdin is not None else None,
            timeout=timeout or None,
        )
        ended = datetime.datetime.now()
        stdout, stderr = _text(out), _text(err)
        if params.get("strip_empty_ends", True):
            stdout, stderr = stdout.rstrip("\r\n"), stderr.rstrip("\r\n")
        result.update(
            changed=True,
            rc=rc,
            stdout=stdout,
            stderr=stderr,
            stdout_lines=stdout.splitlines(),
            stderr_lines=stderr.splitlines(),
            start=str(began),
            end=str(ended),
            delta=str(ended - began),
            timed_out=timed_out,
        )
        if timed_out:
            return result, f"the command ran longer than {timeout} s: its processes in container {name} were ended"
        if rc != 0:
            return result, f"non-zero return code {rc}"
        return result, None


def _text(data: bytes) -> str:
    # Output that is not UTF-8 keeps every valid character; invalid bytes become U+FFFD.
    return data.decode("utf-8", errors="replace")
