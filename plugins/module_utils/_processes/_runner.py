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
        status: tuple[int, int] | None = None,
        inherit_stdin: bool = False,
    ) -> tuple[int, bytes, bytes, bool]:
        """Run argv with exactly env (nothing inherited) in a session of its own, until the
        command's own process ends; past timeout seconds its whole process tree is ended
        (SIGTERM, SIGKILL 5 s later), including the processes it traces (proot's guests, even
        those that left its session).

        The call returns when argv exits, or (status: a pipe's (read end, write end), the write
        end passed to argv, which writes the command's exit status there as it ends: proot
        outlives its command while anything it traces runs) when the status arrives. Processes
        the command left in the background keep running; their output is no longer read.
        kill_on_exit (a proot argv without a status): once proot's own child, the command, has
        exited, the processes it left behind are killed, as proot's --kill-on-exit does;
        otherwise proot (and this call) would wait for them. on_exit (a callable) is called
        after a timeout, to end what argv left behind in other ways (a systemd scope).
        inherit_stdin: argv reads this process's standard input (stdin is then ignored).
        Returns (rc, stdout, stderr, timed_out). run_command has no timeout, hence this method."""
        import subprocess
        import time

        from ansible_collections.armoredgate.volt.plugins.module_utils._processes import _trees

        argv = [str(arg) for arg in argv]
        if inherit_stdin:
            stdin_mode = None
        else:
            stdin_mode = subprocess.PIPE if stdin is not None else subprocess.DEVNULL
        try:
            child = subprocess.Popen(
                argv,
                stdin=stdin_mode,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd="/",
                start_new_session=True,
                pass_fds=(status[1],) if status else (),
            )
        except OSError as exc:
            raise VoltError(f"could not run {argv[0]}: {exc}", cmd=argv) from None
        finally:
            if status:
                os.close(status[1])  # the command's now: its end of the pipe is the only one
        started = _trees.start_time(child.pid)
        deadline = None if timeout is None else time.monotonic() + timeout
        output = _Output(child, None if inherit_stdin else stdin, status[0] if status else None)
        step = 0.05
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if kill_on_exit and started is not None:
                wait = step if wait is None else min(wait, step)
            rc = output.pump(wait)
            if rc is not None:
                out, err = output.finish()
                return rc, out, err, False
            if deadline is not None and time.monotonic() >= deadline:
                break
            step = min(step * 2, 1.0)  # a long command is looked at less and less often
            if kill_on_exit and started is not None and _trees.children(child.pid) == []:
                _trees.kill_tracees((child.pid, started))  # the command has exited: its strays go
        outcome = _trees.terminate_tree(child.pid, started, child.pid, 5)
        if on_exit:
            on_exit()
        out, err = output.finish(wait_for_end=True)
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


class _Output:
    """A running command's pipes: stdin written, stdout and stderr read, and the exit status
    it reports (see Runner.execute), without waiting for pipes its background children hold."""

    def __init__(self, child, stdin: bytes | None, status_fd: int | None) -> None:
        import selectors

        self.child = child
        self.selector = selectors.DefaultSelector()
        self.out_fd, self.err_fd = child.stdout.fileno(), child.stderr.fileno()
        self.chunks: dict[int, list[bytes]] = {self.out_fd: [], self.err_fd: []}
        self.pending = memoryview(stdin or b"")
        self.status = b""
        self.status_fd = status_fd
        for fd in (self.out_fd, self.err_fd):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ)
        if status_fd is not None:
            self.selector.register(status_fd, selectors.EVENT_READ)
        if child.stdin is not None:
            if self.pending:
                os.set_blocking(child.stdin.fileno(), False)
                self.selector.register(child.stdin.fileno(), selectors.EVENT_WRITE)
            else:
                child.stdin.close()

    def _reported(self) -> int | None:
        """The exit status the command wrote on the status pipe, once it has."""
        text = self.status.strip()
        return int(text) if self.status.endswith(b"\n") and text.isdigit() else None

    def pump(self, timeout: float | None) -> int | None:
        """Move data for up to timeout seconds (None: until the end); the exit status once the
        command has ended, else None."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            reported = self._reported() if self.status_fd is not None else None
            if reported is not None:
                return reported
            watching_status = self.status_fd is not None and self.status_fd in self.selector.get_map()
            if self.child.poll() is not None and not watching_status:
                return self.child.returncode
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            # Wake now and then to see whether argv has exited: its background children may
            # hold its output open for ever.
            for key, _mask in self.selector.select(0.05 if left is None else min(left, 0.05)):
                self._move(key.fd)

    def _move(self, fd: int) -> None:
        if self.child.stdin is not None and not self.child.stdin.closed and fd == self.child.stdin.fileno():
            try:
                written = os.write(fd, self.pending[:65536])
            except BrokenPipeError:
                written = len(self.pending)
            self.pending = self.pending[written:]
            if not self.pending:
                self.selector.unregister(fd)
                self.child.stdin.close()
            return
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.selector.unregister(fd)
        elif fd == self.status_fd:
            self.status += data
        else:
            self.chunks[fd].append(data)

    def finish(self, wait_for_end: bool = False) -> tuple[bytes, bytes]:
        """What was written so far, and what comes within a moment, then close the pipes.
        wait_for_end: read to the end (the command and everything it started have ended)."""
        import time

        quiet_since = time.monotonic()
        while self.selector.get_map() and (wait_for_end or time.monotonic() - quiet_since < 0.05):
            events = self.selector.select(0.05)
            for key, _mask in events:
                self._move(key.fd)
            if events:
                quiet_since = time.monotonic()
        self.selector.close()
        for stream in (self.child.stdin, self.child.stdout, self.child.stderr):
            if stream is not None and not stream.closed:
                stream.close()
        if self.status_fd is not None:
            os.close(self.status_fd)
        return b"".join(self.chunks[self.out_fd]), b"".join(self.chunks[self.err_fd])
