# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An OCI image's configuration (how its author meant it to run), checked and made canonical.

The registry's config blob is untrusted: only the fields containers use are kept, each checked
for type and size, so the store's index holds nothing a later reader must distrust.
Canonical form (keys present only when the image sets them):
  entrypoint, cmd: lists of strings; env: {name: value}; workdir: absolute path; user: str;
  exposed_ports: ["80/tcp", ...]; stop_signal: "SIGQUIT"; labels: {str: str}
"""

from __future__ import annotations

import json
import re

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

CONFIG_MAX = 4 * 1024 * 1024  # config blobs are kilobytes; anything bigger is not a config
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PORT_RE = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$")
_SIGNALS = {
    "HUP": 1,
    "INT": 2,
    "QUIT": 3,
    "ILL": 4,
    "TRAP": 5,
    "ABRT": 6,
    "BUS": 7,
    "FPE": 8,
    "KILL": 9,
    "USR1": 10,
    "SEGV": 11,
    "USR2": 12,
    "PIPE": 13,
    "ALRM": 14,
    "TERM": 15,
    "STKFLT": 16,
    "CHLD": 17,
    "CONT": 18,
    "STOP": 19,
    "TSTP": 20,
    "TTIN": 21,
    "TTOU": 22,
    "URG": 23,
    "XCPU": 24,
    "XFSZ": 25,
    "VTALRM": 26,
    "PROF": 27,
    "WINCH": 28,
    "IO": 29,
    "PWR": 30,
    "SYS": 31,
}
_NUMBERS = {number: name for name, number in _SIGNALS.items()}


def signal_name(value: object, what: str = "stop_signal") -> str:
    """'SIGQUIT' for SIGQUIT, QUIT, quit, 3 or '3' (Linux numbers); SIGRTMIN+n as itself."""
    text = str(value).strip().upper() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    bare = text[3:] if text.startswith("SIG") else text
    if bare.isdigit() and int(bare) in _NUMBERS:
        return "SIG" + _NUMBERS[int(bare)]
    if bare in _SIGNALS:
        return "SIG" + bare
    match = re.fullmatch(r"RTMIN(?:\+([0-9]{1,2}))?", bare)
    if match and int(match[1] or 0) <= 30:
        return "SIG" + bare
    raise VoltError(f"{what} {value!r} is not a signal name or number, such as SIGTERM, SIGQUIT or 3")


def signal_number(name: str) -> int:
    """The Linux number of a canonical signal name (SIGRTMIN is 34, as glibc reports it)."""
    bare = name[3:]
    if bare.startswith("RTMIN"):
        return 34 + int(bare.partition("+")[2] or 0)
    return _SIGNALS[bare]


def _strings(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and "\0" not in item for item in value):
        raise VoltError(f"the image's {what} is {_short(value)}, not a list of strings")
    return list(value)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse(blob: bytes, reference: str) -> dict:
    """The canonical config of an image from its config blob (JSON, as the registry sent it)."""
    if len(blob) > CONFIG_MAX:
        raise VoltError(f"{reference}: the image config is larger than {CONFIG_MAX} bytes")
    try:
        document = json.loads(blob)
    except ValueError as exc:
        raise VoltError(f"{reference}: the image config is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise VoltError(f"{reference}: the image config is {_short(document)}, not a JSON object")
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise VoltError(f"{reference}: the image config's config is {_short(config)}, not an object")
    try:
        return canonical(config)
    except VoltError as exc:
        raise VoltError(f"{reference}: {exc.msg}") from None


def canonical(config: dict) -> dict:
    """The fields Volt uses of an OCI config's `config` object (Docker's capitalised names)."""
    result: dict = {}
    for key, name in (("Entrypoint", "entrypoint"), ("Cmd", "cmd")):
        value = _strings(config.get(key), key)
        if value:
            result[name] = value
    result.update(_env_and_identity(config))
    exposed = _exposed_ports(config.get("ExposedPorts") or {})
    if exposed:
        result["exposed_ports"] = exposed
    if config.get("StopSignal"):
        result["stop_signal"] = signal_name(config["StopSignal"], "the image's StopSignal")
    labels = config.get("Labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise VoltError(f"the image's Labels are {_short(labels)}, not an object of strings")
    if labels:
        result["labels"] = dict(sorted(labels.items()))
    return result


def _env_and_identity(config: dict) -> dict:
    """env, workdir and user of the config, those it sets."""
    result: dict = {}
    env = {}
    for item in _strings(config.get("Env"), "Env") or []:
        key, sep, value = item.partition("=")
        if not sep or not _ENV_NAME_RE.fullmatch(key):
            raise VoltError(f"the image's Env entry {_short(item)} is not NAME=value")
        env[key] = value
    if env:
        result["env"] = env
    workdir = config.get("WorkingDir")
    if workdir:
        if not isinstance(workdir, str) or not workdir.startswith("/") or "\0" in workdir:
            raise VoltError(f"the image's WorkingDir {_short(workdir)} is not an absolute path")
        result["workdir"] = workdir
    user = config.get("User")
    if user:
        if not isinstance(user, str) or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?", user):
            raise VoltError(f"the image's User {_short(user)} is not a user name, uid or uid:gid")
        result["user"] = user
    return result


def _exposed_ports(ports: object) -> list[str]:
    if not isinstance(ports, dict):
        raise VoltError(f"the image's ExposedPorts is {_short(ports)}, not an object")
    exposed = []
    for port in ports:
        match = _PORT_RE.fullmatch(port) if isinstance(port, str) else None
        if not match or not 0 < int(match[1]) < 65536:
            raise VoltError(f"the image's exposed port {_short(port)} is not PORT[/tcp|udp|sctp]")
        exposed.append(f"{int(match[1])}/{match[2] or 'tcp'}")
    return sorted(set(exposed), key=lambda p: (int(p.split("/")[0]), p))
