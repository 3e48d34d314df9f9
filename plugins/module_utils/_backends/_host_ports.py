# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which host ports are taken, and by what: a published port must be free before a start.

Read from /proc/net (the kernel's socket tables of this network namespace): no ss or lsof is
needed, and on Android, where apps may not read those tables, nothing is claimed.
"""

from __future__ import annotations

import os

from ansible_collections.armoredgate.volt.plugins.module_utils._validate import split_port

# /proc/net/tcp's state column: 0A is LISTEN; a bound UDP socket is 07 (CLOSE).
_TABLES = (("tcp", "tcp", "0A"), ("tcp6", "tcp", "0A"), ("udp", "udp", "07"), ("udp6", "udp", "07"))


def listeners() -> dict[tuple[int, str], set[str]]:
    """{(port, protocol): socket inodes} of the sockets listening on (or bound to) a port."""
    found: dict[tuple[int, str], set[str]] = {}
    for table, protocol, state in _TABLES:
        try:
            with open(f"/proc/net/{table}", encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10 or fields[3] != state:
                continue
            port = int(fields[1].rsplit(":", 1)[1], 16)
            found.setdefault((port, protocol), set()).add(fields[9])
    return found


def owners(inodes: set[str]) -> list[str]:
    """'name (pid N)' of the processes holding those sockets, as far as this user may look."""
    targets = {f"socket:[{inode}]" for inode in inodes}
    names = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}") in targets for fd in fds):
                continue
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as handle:
                names.append(f"{handle.read().strip()} (pid {entry})")
        except OSError:
            continue
    return sorted(names)


def taken(ports: list[str]) -> list[str]:
    """A description of each published port (as the options store them) that the host uses."""
    table = listeners()
    problems = []
    for port in ports:
        host, _guest, protocol = split_port(port)
        inodes = table.get((host, protocol))
        if inodes:
            holders = owners(inodes)
            by = f" by {', '.join(holders)}" if holders else ""
            problems.append(f"host port {host}/{protocol} is already in use{by}")
    return problems
