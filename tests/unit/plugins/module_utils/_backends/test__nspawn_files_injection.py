# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile values against the .nspawn and drop-in renderers.

The files are read back with a model of systemd 252's parsers (conf-parser's line reader, the
word splitting of each setting), whose rules were checked against real systemd-nspawn runs: a
value either comes back exactly or is refused; it never adds a key, a section or a word.
"""

from __future__ import annotations

import json
import re

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files, _systemd_syntax
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

# -- a model of how systemd reads these files --------------------------------------------------


def read_settings(text: str) -> list[tuple[str, str, str]]:
    """(section, key, raw value) as conf-parser sees them: '\\n', '\\r' and NUL end lines,
    comments are skipped, a line ending in an odd number of backslashes continues on the next
    one (the backslash becomes a space), and whitespace around keys and values goes."""
    found: list[tuple[str, str, str]] = []
    section, continuation = "", None
    for raw in re.split(r"\r\n|[\n\r\0]", text):
        if raw.strip()[:1] in ("#", ";"):
            continue
        line = raw if continuation is None else continuation + raw
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            continuation = line[:-1] + " "
            continue
        continuation = None
        line = line.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line without '=' would be refused by systemd: {line!r}"
        found.append((section, key.strip(), value.strip()))
    return found


def split_words(value: str, *, c_escapes: bool) -> list[str]:
    """extract_first_word with EXTRACT_UNQUOTE, plus EXTRACT_RETAIN_ESCAPE (.nspawn strv
    settings: backslashes are ordinary) or EXTRACT_CUNESCAPE (unit Environment=)."""
    words: list[str] = []
    index, size = 0, len(value)
    while index < size:
        while index < size and value[index] in " \t\n\r":
            index += 1
        if index >= size:
            break
        word, quote = "", ""
        while index < size:
            char = value[index]
            if c_escapes and char == "\\":
                assert index + 1 < size, "trailing backslash"
                escaped = value[index + 1]
                assert escaped in "\\\"' ", f"escape \\{escaped} not modelled"
                word += escaped
                index += 2
                continue
            if quote:
                if char == quote:
                    quote = ""
                else:
                    word += char
            elif char in "\"'":
                quote = char
            elif char in " \t\n\r":
                break
            else:
                word += char
            index += 1
        assert not quote, f"unbalanced quote in {value!r}: systemd ignores the rest of the line"
        words.append(word)
    return words


def split_bind(value: str) -> list[str]:
    """Bind= SOURCE:DEST: split on ':', a backslash makes the next character literal."""
    fields, current, index = [], "", 0
    while index < len(value):
        char = value[index]
        if char == "\\":
            assert index + 1 < len(value), "trailing backslash: systemd refuses the bind"
            current += value[index + 1]
            index += 2
            continue
        if char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
        index += 1
    return [*fields, current]


def unit_value(value: str) -> str:
    """Specifiers first ('%%' is '%'; Volt writes no other), then the words."""
    assert re.fullmatch(r"(?:[^%]|%%)*", value), f"a specifier in {value!r}"
    (word,) = split_words(value.replace("%%", "%"), c_escapes=True)
    return word


def nspawn_env(text: str) -> dict[str, str]:
    values = [v for s, k, v in read_settings(text) if (s, k) == ("Exec", "Environment")]
    return dict(word.split("=", 1) for value in values for word in split_words(value, c_escapes=False))


# -- values that must come back exactly ----------------------------------------------------------

TRICKY = [
    "hello world",
    'a"b',
    "it's",
    "back\\slash",
    "100%",
    "$HOME",
    "${HOME}",
    "%n",
    "%%",
    "ünïcødé ✓ 日本",
    "  leading and trailing  ",
    "",
    "a=b=c",
    "ends with a backslash\\",
    "\\",
    '"',
    "'",
    '\\"',
    '""',
    "# not a comment",
    "; not a comment",
    "[Files]",
    "Bind=/:/host",
    "x Capability=all",
    "\u2028line separator is not a line end\u2029",
]


@pytest.mark.parametrize("value", TRICKY)
def test_env_value_comes_back_exactly_and_alone(value):
    config = {"command": ["/bin/true"], "env": {"VALUE": value, "NEXT": "n"}}
    text = _nspawn_files.render_nspawn(config, {"name": "web", "config": config})
    assert nspawn_env(text) == {"CONTAINER_NAME": "web", "NEXT": "n", "VALUE": value}
    assert [(s, k) for s, k, _v in read_settings(text)] == [
        ("Exec", "ProcessTwo"),
        ("Exec", "KillSignal"),
        ("Exec", "Parameters"),
        ("Exec", "Environment"),
        ("Exec", "Environment"),
        ("Exec", "Environment"),
        ("Network", "VirtualEthernet"),
    ]
    assert _nspawn_files.parse_record(text)["config"]["env"]["VALUE"] == value


@pytest.mark.parametrize("value", TRICKY)
def test_command_argument_comes_back_exactly(value):
    config = {"command": ["/bin/echo", value, "last"]}
    text = _nspawn_files.render_nspawn(config, {"name": "web"})
    (parameters,) = [v for s, k, v in read_settings(text) if k == "Parameters"]
    assert split_words(parameters, c_escapes=False) == ["/bin/echo", value, "last"]


@pytest.mark.parametrize("value", [v for v in TRICKY if v and v == v.rstrip() and not v.endswith("\\")])
def test_data_dir_comes_back_exactly_in_the_dropin(value):
    rootfs = "/srv/" + value.replace("/", "_") + "/containers/web"
    text = _nspawn_files.render_dropin({"memory": 1 << 26, "cpus": 1.5, "restart_policy": "always"}, rootfs)
    settings = read_settings(text)
    assert [(s, k) for s, k, _v in settings] == [
        ("Unit", "StartLimitIntervalSec"),
        ("Service", "Environment"),
        ("Service", "MemoryMax"),
        ("Service", "CPUQuota"),
        ("Service", "Restart"),
        ("Service", "RestartSec"),
        ("Service", "TimeoutStopSec"),
        ("Service", "KillMode"),
    ]
    assert unit_value(settings[1][2]) == "VOLT_ROOTFS=" + rootfs


def test_percent_is_literal_in_nspawn_and_doubled_in_the_dropin():
    config = {"command": ["/bin/echo", "100%", "%n"], "env": {"P": "100%"}}
    text = _nspawn_files.render_nspawn(config, {"name": "web"})
    assert "Environment=P=100%\n" in text and "Parameters=/bin/echo 100% %n\n" in text  # no specifiers there
    assert 'Environment="VOLT_ROOTFS=/srv/100%%/c"' in _nspawn_files.render_dropin({}, "/srv/100%/c")


def test_whitespace_in_env_is_kept_not_split():
    text = _nspawn_files.render_nspawn({"env": {"A": "hello world"}}, {"name": "web"})
    assert 'Environment="A=hello world"' in text
    assert nspawn_env(text)["A"] == "hello world"


@pytest.mark.parametrize(
    "path", ["/srv/with space", '/srv/q"uote', "/srv/it's", "/srv/back\\slash", "/srv/100%n", "/srv/$HOME", "/srv/é"]
)
def test_workdir_comes_back_verbatim(path):
    text = _nspawn_files.render_nspawn({"workdir": path}, {"name": "web"})
    assert [v for s, k, v in read_settings(text) if k == "WorkingDirectory"] == [path]


@pytest.mark.parametrize(
    ("host", "guest"),
    [
        ("/srv/a b", "/mnt/c d"),
        ('/srv/q"uote', "/mnt/it's"),
        ("/srv/back\\slash", "/mnt/end\\"),
        ("/srv/colon:inside", "/mnt/x:y"),
        ("/srv/trailing ", "/mnt/100%"),
    ],
)
def test_bind_paths_come_back_exactly(host, guest):
    rendered = _systemd_syntax.assignment("nspawn", "Bind", (host, guest), "volume")
    ((section, key, value),) = read_settings("[Files]\n" + rendered + "\n")
    assert (section, key) == ("Files", "Bind")
    assert split_bind(value) == [host, guest]


# -- values that must be refused -----------------------------------------------------------------

CONTROL = [
    ("\n", "newline"),
    ("\r", "carriage return"),
    ("\0", "NUL"),
    ("\t", "tab"),
    ("\x1b", "U+001B"),
    ("\x7f", "U+007F"),
    ("\x85", "U+0085"),
]


@pytest.mark.parametrize(("char", "named"), CONTROL)
def test_env_value_with_a_control_character_is_refused_naming_the_key(char, named):
    value = f"x{char}[Files]{char}Bind=/:/host"
    with pytest.raises(VoltError) as caught:
        _nspawn_files.render_nspawn({"env": {"SNEAKY": value}}, {"name": "web"})
    assert "env SNEAKY" in caught.value.msg and repr(value) in caught.value.msg and named in caught.value.msg


def test_the_reported_injection_is_refused():
    config = {"env": {"A": "x\n[Files]\nBind=/:/host"}, "command": ["/bin/sh"]}
    with pytest.raises(VoltError, match=r"env A 'x\\n\[Files\]\\nBind=/:/host' cannot be written to Environment="):
        _nspawn_files.render_nspawn(config, {"name": "web", "config": config})


def test_env_value_with_a_lone_surrogate_is_refused():
    with pytest.raises(VoltError, match="not valid UTF-8"):
        _nspawn_files.render_nspawn({"env": {"A": "bad\udcff"}}, {"name": "web"})


@pytest.mark.parametrize("key", ["1BAD", "A B", "A=B", "A\nB", ""])
def test_env_key_that_is_not_a_name_is_refused(key):
    with pytest.raises(VoltError, match="not a valid variable name"):
        _nspawn_files.render_nspawn({"env": {key: "v"}}, {"name": "web"})


@pytest.mark.parametrize("rootfs", ["/srv/x\nExecStartPre=/bin/sh -c id/containers/web", "/srv/x\r/c", "/srv/\0/c"])
def test_data_dir_with_a_line_break_is_refused(rootfs):
    with pytest.raises(VoltError, match=r"^data_dir .* cannot be written to Environment= in .* unit drop-in"):
        _nspawn_files.render_dropin({}, rootfs)


@pytest.mark.parametrize(
    ("workdir", "why"),
    [
        ("/srv\n[Files]\nBind=/:/host", "newline"),
        ("/srv/x\r", "carriage return"),
        ("/srv/trailing ", "strips the whitespace"),
        ("/srv/ends\\", "join the next line"),
        ("relative", "absolute"),
        ("/srv/../etc", "normalised"),
    ],
)
def test_workdir_that_systemd_would_misread_is_refused(workdir, why):
    with pytest.raises(VoltError, match="workdir") as caught:
        _nspawn_files.render_nspawn({"workdir": workdir}, {"name": "web"})
    assert why in caught.value.msg


@pytest.mark.parametrize(
    "volume", ["/srv/x\n[Exec]\nCapability=all:/mnt", "/srv:/mnt\nBind=/:/host", "/srv:/mnt/trailing ", "/srv\t:/mnt"]
)
def test_volume_that_systemd_would_misread_is_refused(volume):
    with pytest.raises(VoltError, match=r"^volume"):
        _nspawn_files.render_nspawn({"volumes": [volume]}, {"name": "web"})


@pytest.mark.parametrize("arg", ["echo a\necho b", "a\rb", "nul\0", "tab\there", "\x1b[2J"])
def test_command_argument_with_a_control_character_is_refused(arg):
    with pytest.raises(VoltError, match=r"^command"):
        _nspawn_files.render_nspawn({"command": ["/bin/sh", "-c", arg]}, {"name": "web"})


def test_image_entrypoint_with_a_newline_is_refused():
    record = {"name": "web", "entrypoint": ["/entry\n[Exec]\nCapability=all"]}
    with pytest.raises(VoltError, match=r"^the image's entrypoint"):
        _nspawn_files.render_nspawn({}, record)


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"network": "br0\n[Exec]"}, "network"),
        ({"network": "br 0"}, "network"),
        ({"network": "voltbr0", "ports": ["80:80\nBind=/:/h"]}, "port"),
        ({"network": "voltbr0", "ports": ["0:80"]}, "port"),
    ],
)
def test_network_values_are_checked_too(config, option):
    with pytest.raises(VoltError, match=rf"^{option}"):
        _nspawn_files.render_nspawn(config, {"name": "web"})


@pytest.mark.parametrize(
    ("config", "option"),
    [
        ({"memory": "1G\nExecStartPre=/bin/id"}, "memory"),
        ({"memory": -1}, "memory"),
        ({"cpus": 0.001}, "cpus"),
        ({"restart_policy": "always\nExecStartPre=/bin/id"}, "restart_policy"),
        ({"restart_policy": "sometimes"}, "restart_policy"),
        ({"restart_policy": "always", "restart_retries": "2\nExecStartPre=/bin/id"}, "restart_retries"),
        ({"restart_policy": "always", "restart_retries": -3}, "restart_retries"),
        ({"restart_policy": "always", "restart_retries": True}, "restart_retries"),
    ],
)
def test_dropin_values_are_checked_too(config, option):
    with pytest.raises(VoltError, match=rf"^{option}"):
        _nspawn_files.render_dropin(config, "/var/lib/volt/containers/web")


def test_record_line_stays_one_ascii_line_whatever_the_config_holds():
    # Refused later by the env rules, but the record itself must never break the first line.
    record = {"name": "web", "config": {"note": "a\nb\rc\0d\\e\u2028é"}}
    line = _systemd_syntax.comment(_nspawn_files.RECORD_PREFIX + json.dumps(record))
    assert "\n" not in line and "\r" not in line and line.isascii()


def test_line_longer_than_systemd_reads_is_refused():
    with pytest.raises(VoltError, match="too long"):
        _nspawn_files.render_nspawn({"env": {"BIG": "x" * _systemd_syntax.LONG_LINE_MAX}}, {"name": "web"})


# -- the record line of foreign or damaged files ------------------------------------------------


@pytest.mark.parametrize("line", ["# volt-record: [1, 2]", '# volt-record: "text"', "# volt-record: null"])
def test_record_that_is_not_a_mapping_is_a_value_error(line):
    with pytest.raises(ValueError, match="not a mapping"):
        _nspawn_files.parse_record(line + "\n[Exec]\n")


def test_record_that_is_not_json_is_a_value_error():
    with pytest.raises(ValueError):
        _nspawn_files.parse_record("# volt-record: {broken\n[Exec]\n")
