# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Daemons and process trees: start detached, tell a live pid from a reused one, stop a tree."""

from __future__ import annotations

import os
import signal
import time

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


def _process_table() -> list[tuple[int, int, int, int]]:
    """(pid, ppid, session id, start time) of every live process."""
    table = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields and fields[0] not in ("Z", "X", "x"):
            table.append((int(entry), int(fields[1]), int(fields[3]), int(fields[19])))
    return table


def tree(root: int, session: int | None = None, since: int | None = None) -> list[int]:
    """root's descendants, plus members of its session started since root was.

    Guests orphaned by a dead proot lose their parent link but keep the session, so both are
    searched; the start-time bound keeps a reused session id from matching strangers.
    """
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, ppid, _sid, _started in table:
        children.setdefault(ppid, []).append(pid)
    found = set()
    if session and since is not None:
        found = {pid for pid, _ppid, sid, started in table if sid == session and pid != root and started >= since}
    root_is_ours = any(pid == root and (since is None or started == since) for pid, _ppid, _sid, started in table)
    stack = [root] if root_is_ours else []  # a reused pid's children are not ours
    stack += sorted(found)
    seen = set(stack)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in seen:
                seen.add(child)
                stack.append(child)
    seen.discard(root)
    return sorted(seen)


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def _wait_gone(pid: int, started: int | None, session: int | None, deadline: float) -> bool:
    while True:
        if not is_alive(pid, started) and not tree(pid, session, started):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)


def terminate_tree(pid: int, started: int | None, session: int | None, timeout: float) -> str:
    """Stop a process tree: SIGTERM to the tree, SIGKILL to whatever is left after timeout.

    The root (proot) ignores SIGTERM and, killed alone, leaves its guests running untraced, so
    the signals go to every process of the tree. Returns 'terminated' or 'killed'.
    """
    alive = is_alive(pid, started)
    _signal(tree(pid, session, started) if alive or session else [], signal.SIGTERM)
    if _wait_gone(pid, started, session, time.monotonic() + timeout):
        return "terminated"
    for _attempt in range(50):  # guests may fork while we kill: repeat until none is left
        victims = tree(pid, session, started)
        if is_alive(pid, started):
            victims.append(pid)
        if not victims:
            return "killed"
        _signal(victims, signal.SIGKILL)
        time.sleep(_POLL_SECONDS)
    raise VoltError("processes of pid %d survived SIGKILL: %s" % (pid, tree(pid, session, started)))


def daemonize(argv: list[str], env: dict[str, str], log_path: str, cwd: str = "/") -> int:
    """Start argv as a daemon (double fork, setsid, stdin /dev/null, output appended to log_path).

    Returns the daemon's pid. AnsibleModule.run_command waits for its child, so a daemon needs
    its own fork; a close-on-exec pipe reports a failed exec back to the caller.
    """
    read_end, write_end = os.pipe()  # both ends are close-on-exec (PEP 446)
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked child
        try:
            os.close(read_end)
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
    os.close(write_end)
    os.waitpid(child, 0)
    chunks = []
    while True:
        chunk = os.read(read_end, 4096)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    errors = [line[1:] for line in lines if line.startswith("E")]
    pids = [int(line) for line in lines if line.isdigit()]
    if errors or not pids:
        raise VoltError("could not start {}: {}".format(argv[0], "; ".join(errors) or "no pid reported"), cmd=argv)
    return pids[0]
