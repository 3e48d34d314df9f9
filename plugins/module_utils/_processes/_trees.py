# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Daemons and process trees: start detached, tell a live pid from a reused one, stop a tree."""

from __future__ import annotations

import os
import signal
import time
from typing import Callable, NamedTuple, Tuple

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

_POLL_SECONDS = 0.02


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:  # some Android kernels hide it; start times alone still identify a process
        return ""


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may contain spaces or ')')."""
    try:
        with open("/proc/%d/stat" % pid, encoding="utf-8", errors="replace") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """Start time of pid in clock ticks since boot, or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int | None, started: int | None, boot: str | None = None) -> bool:
    """True if pid is running, is not a zombie, and is the same process that was recorded."""
    if not pid or pid <= 0:
        return False
    if boot and boot != boot_id():
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X", "x"):
        return False
    return started is None or int(fields[19]) == started


def session_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields else None


Ident = Tuple[int, int]  # (pid, start time): names one process, never a later one with its pid


class Proc(NamedTuple):
    """One live process as /proc showed it at one moment."""

    pid: int
    ppid: int
    session: int
    started: int
    tracer: int  # TracerPid: proot, for its guests
    uid: int

    @property
    def ident(self) -> Ident:
        return self.pid, self.started


def _status(pid: int) -> tuple[int, int] | None:
    """(TracerPid, real uid) of pid, from /proc/<pid>/status."""
    tracer = uid = None
    try:
        with open("/proc/%d/status" % pid, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("TracerPid:"):
                    tracer = int(line.split()[1])
                elif line.startswith("Uid:"):
                    uid = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return (tracer or 0, uid) if uid is not None else None


def processes() -> dict[int, Proc]:
    """Every live (not zombie) process, by pid."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        fields = _stat_fields(pid)
        status = _status(pid) if fields and fields[0] not in ("Z", "X", "x") else None
        if fields and status is not None:
            table[pid] = Proc(pid, int(fields[1]), int(fields[3]), int(fields[19]), *status)
    return table


def cmdline(pid: int) -> list[str] | None:
    """pid's argv, or None when it cannot be read (gone, or a kernel thread's empty one)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    return raw.decode("utf-8", "surrogateescape").split("\0")[:-1] or None


def mapped_files(pid: int) -> set[str]:
    """Paths of the files pid has mapped (its program, its libraries, proot's loader)."""
    paths = set()
    try:
        with open("/proc/%d/maps" % pid, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                fields = line.rstrip("\n").split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    paths.add(fields[5])
    except OSError:
        pass
    return paths


def _descendants(table: dict[int, Proc], roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.ppid, []).append(proc.pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def traced_tree(table: dict[int, Proc], tracer: Ident) -> set[Ident]:
    """Processes traced by tracer (proot keeps tracing guests that setsid or double-fork away),
    their descendants and tracer's. Nothing if tracer is not that very process any more."""
    pid, started = tracer
    proc = table.get(pid)
    if proc is None or proc.started != started:
        return set()
    members = {p.pid for p in table.values() if p.tracer == pid and p.started >= started}
    members |= _descendants(table, members | {pid})
    members.discard(pid)
    return {table[member].ident for member in members}


def tree(root: int, session: int | None = None, since: int | None = None) -> list[int]:
    """root's descendants and tracees, plus members of its session started since root was.

    The session search is only for a root whose session id cannot have been reused: one the
    caller started and has not reaped yet (a zombie keeps its pid, hence its session id).
    """
    table = processes()
    found = set()
    if session and since is not None:
        found = {p.pid for p in table.values() if p.session == session and p.pid != root and p.started >= since}
    if root in table and (since is None or table[root].started == since):  # a reused pid's are not ours
        found |= {pid for pid, _started in traced_tree(table, table[root].ident)}
    found |= _descendants(table, found)
    found.discard(root)
    return sorted(found)


def send(ident: Ident, signum: int) -> None:
    """Signal the process ident names, never one that reused its pid."""
    pid, started = ident
    try:
        # A pidfd opened before the start-time check pins the very process that was checked.
        pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    except OSError:
        pidfd = None
    try:
        if start_time(pid) != started:
            return
        if pidfd is not None and hasattr(signal, "pidfd_send_signal"):
            signal.pidfd_send_signal(pidfd, signum)
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _any_alive(idents: set[Ident]) -> bool:
    return any(is_alive(pid, started) for pid, started in idents)


def _signal_first(first: tuple[Ident, int], deadline: float) -> None:
    """Send one process its signal and wait (until deadline) for it to exit."""
    send(*first)
    while is_alive(*first[0]) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


def end_group(
    collect: Callable[[], tuple[set[Ident], set[Ident]]], timeout: float, first: tuple[Ident, int] | None = None
) -> str:
    """End the processes collect() names: (members, roots).

    first, (a member, a signal): that member alone gets that signal first (a container's stop
    signal for its main process), and the others are left alone until it has exited or the
    timeout is up. Then members get SIGTERM, then SIGKILL once the timeout is up; roots (proot,
    which ignores SIGTERM and, killed first, would leave its guests running untraced) are killed
    only once no member is left. Collection repeats while killing, since members may fork.
    Returns 'none' if there was nothing to end, else 'terminated' or 'killed'.
    """

    def live() -> tuple[set[Ident], set[Ident]]:
        members, roots = collect()
        return {i for i in members if is_alive(*i)}, {i for i in roots if is_alive(*i)}

    members, roots = live()
    if not members and not roots:
        return "none"
    deadline = time.monotonic() + timeout
    if first is not None and first[0] in members:
        _signal_first(first, deadline)
        members, roots = live()
        if not members and not roots:
            return "terminated"
    for ident in members:
        send(ident, signal.SIGTERM)
    signalled = set(members)
    while True:
        if not _any_alive(members | roots):
            members, roots = live()  # one more look: a member may have forked meanwhile
            if not members and not roots:
                return "terminated"
            for ident in members - signalled:
                send(ident, signal.SIGTERM)
            signalled |= members
        if time.monotonic() >= deadline:
            break
        time.sleep(_POLL_SECONDS)
    for _attempt in range(100):
        members, roots = live()
        if not members and not roots:
            return "killed"
        for ident in members or roots:
            send(ident, signal.SIGKILL)
        time.sleep(_POLL_SECONDS)
    raise VoltError("processes survived SIGKILL: %s" % sorted(pid for pid, _started in members | roots))


def terminate_tree(pid: int, started: int | None, session: int | None, timeout: float) -> str:
    """Stop a process tree: SIGTERM to the tree, SIGKILL to whatever is left after timeout.

    The root may be proot: it ignores SIGTERM and, killed before its guests, leaves them running
    untraced, so the root is killed last. Returns 'terminated' or 'killed'.
    """
    root_started = started if started is not None else start_time(pid)

    def collect() -> tuple[set[Ident], set[Ident]]:
        table = processes()
        members = {table[member].ident for member in tree(pid, session, started) if member in table}
        root = table.get(pid)
        if root is None or root.started != root_started:
            return members, set()
        if any(proc.tracer == pid for proc in table.values()):
            return members, {root.ident}  # a tracer goes last, once its tracees are gone
        return members | {root.ident}, set()

    outcome = end_group(collect, timeout)
    return "terminated" if outcome == "none" else outcome


def children(pid: int) -> list[int] | None:
    """pid's child processes, or None where the kernel does not list them (CONFIG_PROC_CHILDREN)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid), encoding="ascii") as handle:
            return [int(child) for child in handle.read().split()]
    except (OSError, ValueError):
        return None


def kill_tracees(tracer: Ident) -> None:
    """SIGKILL every process traced by tracer and their descendants (proot's --kill-on-exit)."""
    for _attempt in range(100):
        members = traced_tree(processes(), tracer)
        if not members:
            return
        for ident in members:
            send(ident, signal.SIGKILL)
        time.sleep(_POLL_SECONDS)


def daemonize(argv: list[str], env: dict[str, str], log_path: str, cwd: str = "/") -> int:
    """Start argv as a daemon (double fork, setsid, stdin /dev/null, output appended to log_path).

    Returns the daemon's pid. AnsibleModule.run_command waits for its child, so a daemon needs
    its own fork; a close-on-exec pipe reports a failed exec back to the caller.
    """
    read_end, write_end = os.pipe()  # both ends are close-on-exec (PEP 446)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        os.close(read_end)
        _daemon_child(argv, env, log_path, cwd, write_end=write_end)
    os.close(write_end)
    os.waitpid(child, 0)
    lines = _read_all(read_end).splitlines()
    errors = [line[1:] for line in lines if line.startswith("E")]
    pids = [int(line) for line in lines if line.isdigit()]
    if errors or not pids:
        raise VoltError("could not start {}: {}".format(argv[0], "; ".join(errors) or "no pid reported"), cmd=argv)
    return pids[0]


def _daemon_child(
    argv: list[str],
    env: dict,
    log_path: str,
    cwd: str,
    *,
    write_end: int,
) -> None:  # pragma: no cover - runs in the forked child
    """The forked child of daemonize: a new session, then the daemon as its child. Never returns."""
    import fcntl

    try:
        write_end = fcntl.fcntl(write_end, fcntl.F_DUPFD_CLOEXEC, 10)  # above the fds set up below
        os.setsid()
        grandchild = os.fork()
        if grandchild:
            os.write(write_end, b"%d\n" % grandchild)
            os._exit(0)
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # may hold secrets
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, write_end)
        os.closerange(write_end + 1, 65536)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # report any failure, then leave without running cleanup
        try:
            os.write(write_end, (f"E{exc}\n").encode("utf-8", "replace"))
        finally:
            os._exit(127)


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")
