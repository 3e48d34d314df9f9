# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Text of the systemd files behind a container: the template unit, .nspawn settings, drop-ins.

Pure functions of the container's config, so re-running renders the same bytes and a file is
rewritten (and systemd reloaded) only when its content really changes.
"""

from __future__ import annotations

import json

TEMPLATE_NAME = "volt-container@.service"
RECORD_PREFIX = "# volt-record: "

# One template for every container; the rootfs path comes from each container's drop-in, so a
# custom data_dir needs no copy of the unit. Modelled on systemd-nspawn@.service.
TEMPLATE_UNIT = """\
# Managed by armoredgate.volt: one instance per Volt container.
[Unit]
Description=Volt container %I
Documentation=man:systemd-nspawn(1) man:systemd.nspawn(5)
Wants=modprobe@tun.service modprobe@loop.service
PartOf=machines.target
Before=machines.target
After=network.target modprobe@tun.service modprobe@loop.service

[Service]
ExecStart=systemd-nspawn --quiet --keep-unit --link-journal=try-guest --settings=override \\
    --machine=%I --directory=${VOLT_ROOTFS}
KillMode=mixed
Type=notify
RestartForceExitStatus=133
SuccessExitStatus=133
Slice=machine.slice
Delegate=yes
TasksMax=16384
DevicePolicy=closed
DeviceAllow=/dev/net/tun rwm
DeviceAllow=char-pts rw

[Install]
WantedBy=machines.target
"""


def unit_escape(name: str) -> str:
    """What `systemd-escape NAME` prints: '/' -> '-', bytes outside [A-Za-z0-9:_.] and a
    leading '.' -> '\\xNN' (so '-' becomes '\\x2d')."""
    escaped = []
    for index, byte in enumerate(name.encode("utf-8")):
        char = chr(byte)
        if char == "/":
            escaped.append("-")
        elif (char.isascii() and char.isalnum()) or char in ":_" or (char == "." and index > 0):
            escaped.append(char)
        else:
            escaped.append("\\x%02x" % byte)
    return "".join(escaped)


def unit_name(name: str) -> str:
    return f"volt-container@{unit_escape(name)}.service"


def quote(arg: str) -> str:
    """Quote one argument for a .nspawn Parameters= line.

    systemd splits that line like a shell but keeps backslashes literally (no escapes), so a
    word is built from double-quoted runs, with each '"' in a single-quoted run of its own;
    adjacent runs join into one word. A newline cannot be expressed at all.
    """
    if arg and all(char.isalnum() or char in "/._-+=:,@%" for char in arg):
        return arg
    return "".join("'\"'" if part == '"' else f'"{part}"' for part in _split_quotes(arg)) or '""'


def _split_quotes(arg: str) -> list[str]:
    parts: list[str] = []
    for char in arg:
        if char == '"' or not parts or parts[-1] == '"':
            parts.append(char)
        else:
            parts[-1] += char
    return parts


def render_nspawn(config: dict, record: dict) -> str:
    """The container's /etc/systemd/nspawn/<name>.nspawn; its first line holds the Volt record."""
    lines = [RECORD_PREFIX + json.dumps(record, sort_keys=True, separators=(",", ":")), "[Exec]"]
    if config.get("boot"):
        lines.append("Boot=yes")
    else:
        lines.append("ProcessTwo=yes")  # a stub init as PID 1 reaps zombies and forwards signals
        # nspawn's default for a non-booted container is SIGKILL; stop gracefully, as proot does.
        lines.append("KillSignal=SIGTERM")
    command = config.get("command") or record.get("entrypoint")
    if command:
        lines.append("Parameters=" + " ".join(quote(arg) for arg in command))
    env = {"CONTAINER_NAME": record.get("name", ""), **(config.get("env") or {})}
    for key, value in sorted(env.items()):
        lines.append(f"Environment={key}={value}")
    if config.get("workdir") and config["workdir"] != "/":
        lines.append(f"WorkingDirectory={config['workdir']}")
    binds = config.get("volumes") or []
    if binds:
        lines.append("[Files]")
        for volume in binds:
            host, guest, *mode = volume.split(":")
            lines.append(f"{'BindReadOnly' if mode == ['ro'] else 'Bind'}={host}:{guest}")
    lines.append("[Network]")
    network = config.get("network") or "host"
    if network == "host":
        lines.append("VirtualEthernet=no")
    elif network == "none":
        lines.append("Private=yes")
    else:
        lines.append(f"Bridge={network}")
    for port in config.get("ports") or []:
        lines.append(f"Port=tcp:{port}")
    return "\n".join(lines) + "\n"


def parse_record(text: str) -> dict | None:
    """The Volt record from the first line of a .nspawn file, or None if Volt did not write it."""
    first = text.split("\n", 1)[0]
    if not first.startswith(RECORD_PREFIX):
        return None
    return json.loads(first[len(RECORD_PREFIX) :])


def render_dropin(config: dict, rootfs: str) -> str:
    """Per-container unit settings: where the rootfs is, limits and the restart policy."""
    lines = ["# Managed by armoredgate.volt", "[Service]", f'Environment="VOLT_ROOTFS={rootfs}"']
    if config.get("memory"):
        lines.append(f"MemoryMax={config['memory']}")
    if config.get("cpus"):
        lines.append(f"CPUQuota={round(config['cpus'] * 100)}%")
    lines.append(f"Restart={config.get('restart_policy') or 'no'}")
    return "\n".join(lines) + "\n"
