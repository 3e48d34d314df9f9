# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs programs for the collection: argv lists only, never a shell string."""

from __future__ import annotations

import os

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError


class Runner:
    """Runs programs through AnsibleModule.run_command, or, with no module (the boot hook runs
    outside Ansible), through subprocess; raises VoltError on failure either way."""

    def __init__(self, module=None) -> None:
        self._module = module

    def run(
        self,
        argv: list[str],
        check: bool = True,
        data: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> tuple[int, str, str]:
        argv = [str(arg) for arg in argv]
        try:
            if self._module is None:
                import subprocess

                done = subprocess.run(
                    argv,
                    input=data,
                    env=dict(os.environ, **(env or {})),
                    cwd=cwd,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                rc, out, err = done.returncode, done.stdout, done.stderr
            else:
                rc, out, err = self._module.run_command(
                    argv, data=data, environ_update=env, cwd=cwd, handle_exceptions=False
                )
        except OSError as exc:  # the program could not be run at all
            raise VoltError(f"could not run {argv[0]}: {exc}", cmd=argv) from None
        if check and rc != 0:
            raise VoltError(
                "%s failed with exit code %d: %s" % (argv[0], rc, (err or out).strip()),
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    def execute(
        self,
        argv: list[str],
        env: dict[str, str],
        stdin: bytes | None = None,
        timeout: float | None = None,
        *,
        kill_on_exit: bool = False,
        on_exit=None,
    ) -> tuple[int, bytes, bytes, bool]:
        """Run argv with exactly env (nothing inherited) in a session of its own; past timeout
        seconds its whole process tree is ended (SIGTERM, SIGKILL 5 s later), including the
        processes it traces (proot's guests, even those that left its session).
        kill_on_exit (for a proot argv): once proot's own child, the command, has exited, the
        processes it left behind are killed, as proot's --kill-on-exit does; otherwise proot (and
        this call) would wait for them. on_exit (a callable) ends what argv left behind in other
        ways (a systemd scope): called once argv itself has exited, and after a timeout.
        Returns (rc, stdout, stderr, timed_out). run_command has no timeout, hence this method."""
        import subprocess
        import time

        from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _trees

        argv = [str(arg) for arg in argv]
        try:
            child = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd="/",
                start_new_session=True,
            )
        except OSError as exc:
            raise VoltError(f"could not run {argv[0]}: {exc}", cmd=argv) from None
        started = _trees.start_time(child.pid)
        deadline = None if timeout is None else time.monotonic() + timeout
        step = 0.05
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if (kill_on_exit or on_exit) and started is not None:
                wait = step if wait is None else min(wait, step)
            try:
                # communicate() may be called again after a timeout; the input is sent only once.
                out, err = child.communicate(stdin, timeout=wait)
                return child.returncode, out, err, False
            except subprocess.TimeoutExpired:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                break
            step = min(step * 2, 1.0)  # a long command is looked at less and less often
            if kill_on_exit and started is not None and _trees.children(child.pid) == []:
                _trees.kill_tracees((child.pid, started))  # the command has exited: its strays go
            if on_exit and child.poll() is not None:
                on_exit()  # argv has exited, strays still hold its output open
        outcome = _trees.terminate_tree(child.pid, started, child.pid, 5)
        if on_exit:
            on_exit()
        out, err = child.communicate()
        # What ended it, the same on every backend (proot itself would exit 255, nsenter -15).
        return -9 if outcome == "killed" else -15, out, err, True

    def which(self, program: str, extra_dirs: list[str] | None = None) -> str | None:
        if self._module is None:
            import shutil

            path = os.pathsep.join([os.environ.get("PATH", os.defpath), *(extra_dirs or [])])
            return shutil.which(program, path=path)
        return self._module.get_bin_path(program, required=False, opt_dirs=extra_dirs or [])

    def warn(self, msg: str) -> None:
        if self._module is None:
            import sys

            sys.stderr.write(f"[WARNING]: {msg}\n")
        else:
            self._module.warn(msg)
