# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every value written into a .nspawn file or a unit drop-in goes through `assignment()`.

systemd reads both files line by line: '\\n', '\\r' and NUL each end a line, whitespace around
a line is dropped, and a line ending in an odd number of backslashes is joined to the next one.
Only then does the setting's own parser see the value, and each parser has rules of its own
(checked on systemd 252):

- .nspawn Parameters= and Environment=: words split on whitespace; "..." and '...' group and
  are removed; a backslash is an ordinary character, even inside quotes; no '%' specifiers.
- .nspawn WorkingDirectory=: the value verbatim (no quotes, no escapes), as a normalised path.
- .nspawn Bind= and BindReadOnly=: SOURCE:DEST, where '\\:' is a literal ':' and '\\\\' a
  literal backslash; quotes and spaces are ordinary characters.
- unit Environment=: '%' specifiers first ('%%' is '%'), then words with "..." grouping and
  C escapes ('\\\\', '\\"').
- .nspawn User= and Hostname=: a user or host name, verbatim (only names of letters, digits, '_', '.', '-' pass).
- unit Wants=: unit names, split on whitespace; backslashes kept as they are ('\\x2d' of an
  escaped name stays), '%' specifiers expanded.
- unit ExecStart=, ExecStartPost=, ExecStop= and ExecStopPost=: as unit Environment=, and '$' expands
  variables when the command runs ('$$' is '$'); the program, first, must be an absolute path
  (a leading '-', '@', '+', '!' or ':' would be a prefix).

A value these rules cannot carry exactly (a control character, a trailing space where systemd
strips it, a trailing backslash where nothing can escape it) is refused with a VoltError naming
the option and the value: it must never reach the file, where it would add settings or sections.
"""

from __future__ import annotations

import posixpath
import re
from typing import Callable

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

# systemd's LONG_LINE_MAX: a longer line makes the whole file unreadable.
LONG_LINE_MAX = 1024 * 1024
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_TOKEN_RE = re.compile(r"[A-Za-z0-9+_-]+")
_UNIT_WORD_RE = re.compile(r"[A-Za-z0-9/._:@=-]+")
# Characters a word of Parameters=/Environment= may show unquoted (no space, quote, backslash).
_BARE_WORD_RE = re.compile(r"[A-Za-z0-9/._+=:,@%-]+")
_CHAR_NAMES = {"\n": "a newline", "\r": "a carriage return", "\0": "a NUL byte", "\t": "a tab"}


class _Refused(Exception):
    """Why a value cannot be written; assignment() turns it into a VoltError with the context."""


def _char_name(char: str) -> str:
    return f"{_CHAR_NAMES.get(char, 'the control character')} (U+{ord(char):04X})"


def _text(value: object) -> str:
    """A string systemd can carry on one line, as UTF-8: no control characters at all."""
    if not isinstance(value, str):
        raise _Refused(f"it is a {type(value).__name__}, not a string")
    for char in value:
        code = ord(char)
        # C0, DEL and C1 controls: line ends, terminal escapes; none belongs in a setting.
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise _Refused(f"it contains {_char_name(char)}")
        if 0xD800 <= code <= 0xDFFF:
            raise _Refused("it is not valid UTF-8 (it holds an unpaired surrogate)")
    return value


def _no_trailing(value: str, where: str) -> str:
    """Refuse what the line reader would change: trailing whitespace is stripped, and a
    trailing backslash joins the next line to this one."""
    if value != value.rstrip():
        raise _Refused(f"systemd strips the whitespace at the end of {where}")
    if value.endswith("\\"):
        raise _Refused(f"a backslash at the end of {where} would join the next line of the file to it")
    return value


def _path(value: object) -> str:
    path = _text(value)
    if not path.startswith("/") or path.startswith("//") or posixpath.normpath(path) != path:
        raise _Refused("it is not a normalised absolute path")
    return path


def _word(value: str) -> str:
    """One word for a split-and-unquote setting whose parser keeps backslashes (Parameters=,
    .nspawn Environment=): double-quoted runs, each '"' alone in single quotes. Every quoted
    word ends with a quote, so the line never ends with a backslash."""
    if _BARE_WORD_RE.fullmatch(value):
        return value
    runs: list[str] = []
    for char in value:
        if char == '"' or not runs or runs[-1] == '"':
            runs.append(char)
        else:
            runs[-1] += char
    return "".join("'\"'" if run == '"' else f'"{run}"' for run in runs) or '""'


def _env_pair(value: object) -> tuple[str, str]:
    if not isinstance(value, tuple) or len(value) != 2:
        raise _Refused("it is not a (name, value) pair")
    key, text = value
    if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key):
        raise _Refused(f"{key!r} is not a valid variable name")
    return key, _text(text)


def _nspawn_words(value: object) -> str:
    if not isinstance(value, list) or not value:
        raise _Refused("it is not a non-empty list of words")
    return " ".join(_word(_text(word)) for word in value)


def _nspawn_env(value: object) -> str:
    key, text = _env_pair(value)
    return _word(f"{key}={text}")


def _nspawn_workdir(value: object) -> str:
    return _no_trailing(_path(value), "the path")


def _bind_field(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:")


def _nspawn_bind(value: object) -> str:
    if not isinstance(value, tuple) or len(value) != 2:
        raise _Refused("it is not a (host path, container path) pair")
    host, guest = (_path(part) for part in value)
    if guest != guest.rstrip():  # the destination ends the line, whose trailing whitespace goes
        raise _Refused("systemd strips the whitespace at the end of the container path")
    return f"{_bind_field(host)}:{_bind_field(guest)}"


def _nspawn_port(value: object) -> str:
    match = re.fullmatch(r"(tcp|udp):(\d{1,5}):(\d{1,5})", value) if isinstance(value, str) else None
    if not match or not all(0 < int(number) < 65536 for number in match.groups()[1:]):
        raise _Refused("it is not PROTOCOL:HOST:CONTAINER with ports 1-65535")
    return value  # type: ignore[return-value]


def _ifname(value: object) -> str:
    if not isinstance(value, str) or not _IFNAME_RE.fullmatch(value):
        raise _Refused("it is not a network interface name")
    return value


def _token(value: object) -> str:
    """Values Volt chooses itself (yes, SIGTERM, on-failure): a plain token, nothing to quote."""
    if not isinstance(value, str) or not _TOKEN_RE.fullmatch(value):
        raise _Refused("it is not a plain word")
    return value


def _unit_env(value: object) -> str:
    key, text = _env_pair(value)
    escaped = f"{key}={text}".replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def _unit_command(value: object) -> str:
    if not isinstance(value, list) or not value:
        raise _Refused("it is not a non-empty list of words")
    _path(value[0])
    escaped = (_text(word).replace("\\", "\\\\").replace('"', '\\"') for word in value)
    return " ".join(f'"{word}"'.replace("%", "%%").replace("$", "$$") for word in escaped)


def _positive_int(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Refused("it is not a positive whole number")
    return str(value)


def _milliseconds(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _Refused("it is not a positive whole number of milliseconds")
    return f"{value}ms"


def _interval(value: object) -> str:
    """A rate limit's interval: 'infinity' (never forgets) or 0 (no limit at all)."""
    if value == "infinity" or (value == 0 and not isinstance(value, bool)):
        return str(value)
    raise _Refused("it is neither infinity nor 0")


def _percent(value: object) -> str:
    return _positive_int(value) + "%"


def _seconds(value: object) -> str:
    """A time span of whole seconds; 0 is 1 ms, since systemd reads a 0 timeout as none at all."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refused("it is not a whole number of seconds (0 or more)")
    return f"{value}s" if value else "1ms"


def _user_name(value: object) -> str:
    """A user name of the container's passwd, as nspawn's User= looks it up (no quoting)."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", value):
        raise _Refused("it is not a user name (letters, digits, '_', '.', '-')")
    return value


def _host_name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,63}", value):
        raise _Refused("it is not a host name (letters, digits, '.', '-')")
    return value


def _unit_words(value: object) -> str:
    """Unit names or a command line Volt builds itself: plain words only (no quotes, spaces,
    backslashes, '$' or '%' specifiers to escape)."""
    if not isinstance(value, list) or not value or not all(isinstance(word, str) for word in value):
        raise _Refused("it is not a non-empty list of words")
    if not all(_UNIT_WORD_RE.fullmatch(word) for word in value):
        raise _Refused("a word holds a character other than letters, digits and /._:@=-")
    return " ".join(value)


_UNIT_NAME_RE = re.compile(r"(?:[A-Za-z0-9:_.@-]|\\x[0-9a-f]{2})+")


def _unit_names(value: object) -> str:
    """Names of units (as unit_escape() makes them): a dependency setting keeps backslashes as
    they are and expands '%' specifiers, which an escaped name never holds ('%' is '\\x25')."""
    if not isinstance(value, list) or not value or not all(isinstance(word, str) for word in value):
        raise _Refused("it is not a non-empty list of unit names")
    if not all(_UNIT_NAME_RE.fullmatch(word) for word in value):
        raise _Refused("a unit name holds a character other than letters, digits, :_.@- and \\xNN escapes")
    return " ".join(value)


# (file, setting) -> the encoder implementing that setting's syntax.
_SETTINGS: dict[tuple[str, str], Callable[[object], str]] = {
    ("nspawn", "Boot"): _token,
    ("nspawn", "ProcessTwo"): _token,
    ("nspawn", "KillSignal"): _token,
    ("nspawn", "Parameters"): _nspawn_words,
    ("nspawn", "Environment"): _nspawn_env,
    ("nspawn", "WorkingDirectory"): _nspawn_workdir,
    ("nspawn", "Bind"): _nspawn_bind,
    ("nspawn", "BindReadOnly"): _nspawn_bind,
    ("nspawn", "VirtualEthernet"): _token,
    ("nspawn", "Private"): _token,
    ("nspawn", "Bridge"): _ifname,
    ("nspawn", "Port"): _nspawn_port,
    ("unit", "Environment"): _unit_env,
    ("unit", "MemoryMax"): _positive_int,
    ("unit", "CPUQuota"): _percent,
    ("unit", "Restart"): _token,
    ("unit", "RestartSec"): _milliseconds,
    ("unit", "StartLimitIntervalSec"): _interval,
    ("unit", "StartLimitBurst"): _positive_int,
    ("unit", "KillMode"): _token,
    ("unit", "TimeoutStopSec"): _seconds,
    ("unit", "After"): _unit_words,
    ("unit", "Wants"): _unit_names,
    ("unit", "ExecStart"): _unit_command,
    ("unit", "TimeoutStartSec"): _seconds,
    ("unit", "OnActiveSec"): _milliseconds,
    ("unit", "OnUnitInactiveSec"): _milliseconds,
    ("unit", "AccuracySec"): _milliseconds,
    ("unit", "ExecStartPre"): _unit_words,
    ("unit", "ExecStartPost"): _unit_command,
    ("unit", "ExecStop"): _unit_command,
    ("unit", "ExecStopPost"): _unit_command,
    ("nspawn", "User"): _user_name,
    ("nspawn", "Hostname"): _host_name,
}
_FILES = {"nspawn": "the container's .nspawn settings file", "unit": "the container's unit drop-in"}


def assignment(file: str, setting: str, value: object, option: str, secret: bool = False) -> str:
    """The line `Setting=...` for `file` ('nspawn' or 'unit') that systemd reads back as exactly
    value; raises VoltError naming `option` (the user's name for it) and the value otherwise
    (never a `secret` value).

    Environment= takes a (name, value) pair, Bind= a (host, container) pair, Parameters= a list.
    """
    try:
        encoded = _SETTINGS[file, setting](value)
    except _Refused as exc:
        shown = value[1] if setting == "Environment" and isinstance(value, tuple) and len(value) == 2 else value
        named = option if secret else f"{option} {shown!r}"
        raise VoltError(f"{named} cannot be written to {setting}= in {_FILES[file]}: {exc}", option=option) from None
    line = f"{setting}={encoded}"
    if len(line.encode("utf-8")) >= LONG_LINE_MAX:
        raise VoltError(f"{option} is too long for {_FILES[file]} (systemd reads lines up to 1 MiB)", option=option)
    return line


def comment(line: str) -> str:
    """A whole comment line ('# ...'): one line of printable characters (e.g. ASCII JSON) that no
    reader takes for a setting or joins to the next line."""
    try:
        if not line.startswith("# ") or line.endswith("\\"):
            raise _Refused("it is not a comment that ends the line")
        _text(line)
    except _Refused as exc:
        raise VoltError(f"internal: comment {line[:60]!r} cannot be written: {exc}") from None
    if len(line.encode("utf-8")) >= LONG_LINE_MAX:
        raise VoltError("the container's record is too long for its .nspawn file (systemd reads lines up to 1 MiB)")
    return line
