# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hostile and tricky values against the systemd files, on a real systemd host: what cannot be
written is refused before anything is written; what can arrives in the payload exactly."""

from __future__ import annotations

import base64
import shlex

import pytest

from ...polling import wait_for

UNIT = "volt-container@{}.service"
SLEEPER = ["/bin/sh", "-c", "echo started; exec sleep 1000"]

# Each value must reach the payload's environment byte for byte.
TRICKY_ENV = {
    "SPACES": "hello world",
    "DQUOTE": 'a"b',
    "SQUOTE": "it's",
    "BACKSLASH": "back\\slash",
    "TRAILING_BACKSLASH": "ends\\",
    "PERCENT": "100%",
    "SPECIFIER": "%n",
    "DOLLAR": "$HOME",
    "BRACED": "${HOME}",
    "UNICODE": "ünïcødé ✓ 日本",
    "EDGES": "  leading and trailing  ",
    "EMPTY": "",
    "EQUALS": "a=b=c",
    "SECTION": "[Files]",
    "KEYLIKE": "x Capability=all Bind=/:/host",
    "COMMENT": "# not a comment",
}
NSPAWN_KEYS = [
    "[Exec]",
    "ProcessTwo",
    "KillSignal",
    "Parameters",
    *["Environment"] * (len(TRICKY_ENV) + 1),
    "WorkingDirectory",
    "[Files]",
    "Bind",
    "[Network]",
    "Bridge",
]


def payload_environ(target, leader: int) -> dict[str, str]:
    (payload,) = target.descendants(leader)
    raw = base64.b64decode(target.sh(f"base64 -w0 /proc/{payload}/environ"))
    return dict(entry.decode("utf-8").split("=", 1) for entry in raw.split(b"\0") if entry)


def keys_of(text: str) -> list[str]:
    """Section headers and keys, in order, of a systemd file (comments and blank lines aside)."""
    found = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        found.append(line if line.startswith("[") else line.split("=", 1)[0])
    return found


def test_tricky_values_arrive_exactly_and_add_no_setting(target, converge):
    host_dir = '/srv/vol with space 100% it\'s "q"'
    guest_dir = '/mnt/in side %n "q" it\'s'
    workdir = '/root/work dir 100% "q" it\'s $HOME'
    target.sh(f"mkdir -p {shlex.quote(host_dir)} && echo from-host > {shlex.quote(host_dir + '/f')}")
    command = ["/bin/sh", "-c", 'cat "$1/f" > /root/seen.txt; pwd > /root/pwd.txt; exec sleep 1000', "sh", guest_dir]
    target.sh(f"mkdir -p {shlex.quote(target.data_dir + '/images/busybox' + workdir)}")
    result = converge(
        name="tricky",
        image="busybox",
        command=command,
        env=TRICKY_ENV,
        volumes=[f"{host_dir}:{guest_dir}"],
        workdir=workdir,
        network="voltbr0",
    )
    root = target.rootfs("tricky")
    assert wait_for(lambda: target.read(f"{root}/root/pwd.txt"), timeout=30)
    environ = payload_environ(target, result["container"]["pid"])
    assert {key: environ.get(key) for key in TRICKY_ENV} == TRICKY_ENV
    assert environ["CONTAINER_NAME"] == "tricky"
    assert target.read(f"{root}/root/seen.txt") == "from-host\n", "the bind reached the container path exactly"
    assert target.read(f"{root}/root/pwd.txt") == workdir + "\n"

    settings = target.read("/etc/systemd/nspawn/tricky.nspawn")
    assert keys_of(settings) == NSPAWN_KEYS
    unit = target.sh(f"systemctl cat {UNIT.format('tricky')}")
    dropin = unit.split("50-volt.conf\n", 1)[1]
    assert keys_of(dropin) == [
        "[Unit]",
        "StartLimitIntervalSec",
        "After",
        "[Service]",
        "Environment",
        "ExecStartPre",
        "Restart",
        "RestartSec",
        "TimeoutStopSec",
        "KillMode",
        "ExecStartPost",
        "ExecStopPost",
    ]
    # nspawn (root) reads private files; env values may be secrets.
    modes = target.sh(
        "stat -c %a /etc/systemd/nspawn/tricky.nspawn"
        f" /etc/systemd/system/{shlex.quote(UNIT.format('tricky'))}.d/50-volt.conf"
    )
    assert modes.split() == ["600", "600"]


@pytest.mark.parametrize(
    ("args", "named", "bad"),
    [
        ({"env": {"EVIL": "x\n[Files]\nBind=/:/host"}}, "EVIL", "x\n[Files]\nBind=/:/host"),
        ({"env": {"EVIL": "x\rCapability=all"}}, "EVIL", "x\rCapability=all"),
        ({"env": {"EVIL": "tab\there"}}, "EVIL", "tab\there"),
        ({"workdir": "/srv\n[Exec]\nCapability=all"}, "workdir", "/srv\n[Exec]\nCapability=all"),
        ({"workdir": "/srv/ends\\"}, "workdir", "/srv/ends\\"),
        ({"volumes": ["/srv/x\n[Exec]\nCapability=all:/mnt"]}, "volume", "/srv/x\n[Exec]\nCapability=all"),
        ({"command": ["/bin/sh", "-c", "echo\x1b[2J"]}, "command", "echo\x1b[2J"),
    ],
)
def test_hostile_values_are_refused_and_nothing_is_written(target, args, named, bad):
    """Whichever layer refuses (option validation or the systemd renderer), the error names the
    option and shows the value, in check mode and not, and nothing at all is written."""
    args = {"name": "evil", "image": "busybox", "command": SLEEPER, **args}
    if "workdir" in args:  # it exists: only what systemd would make of it can be refused
        target.sh(f"mkdir -p {shlex.quote(target.data_dir + '/images/busybox' + args['workdir'])}")
    before = target.snapshot()
    for check in (True, False):
        result = target.volt(check=check, **args)
        assert result.get("failed"), result
        assert named in result["msg"] and repr(bad)[1:-1] in result["msg"], result["msg"]
    assert target.snapshot() == before
    assert not target.exists("/etc/systemd/nspawn/evil.nspawn")
    assert not target.exists(f"/etc/systemd/system/{UNIT.format('evil')}.d")
    assert not target.exists(target.rootfs("evil"))


def test_hostile_data_dir_is_refused_and_nothing_is_written(target):
    data_dir = "/var/lib/volt-evil\nExecStartPre=/bin/touch /pwned\n"
    before = target.snapshot()
    result = target.volt(name="evil", rootfs=f"{target.data_dir}/images/busybox", command=SLEEPER, data_dir=data_dir)
    assert result.get("failed") and "data_dir" in result["msg"], result
    assert "/var/lib/volt-evil\\nExecStartPre" in result["msg"], result["msg"]
    assert target.snapshot() == before
    assert not target.exists(data_dir) and not target.exists("/var/lib/volt-evil")
    assert not target.exists("/pwned")


def test_foreign_and_broken_nspawn_files_do_not_break_listing(target, converge):
    converge(name="good", image="busybox", command=SLEEPER)
    target.sh(
        "printf '[Exec]\\nBoot=yes\\n' > /etc/systemd/nspawn/theirs.nspawn;"
        " printf '[Exec]\\n' > '/etc/systemd/nspawn/their machine.nspawn';"
        " printf '# volt-record: {broken\\n[Exec]\\n' > /etc/systemd/nspawn/broken.nspawn;"
        " printf '# volt-record: [1]\\n[Exec]\\n' > /etc/systemd/nspawn/alist.nspawn"
    )
    info = target.volt("volt_container_info")
    assert not info.get("failed"), info.get("msg")
    status = {container["name"]: container["status"] for container in info["containers"]}
    assert status == {"alist": "corrupt", "broken": "corrupt", "good": "running"}

    refused = target.volt(name="theirs", state="absent", force=True)
    assert refused.get("failed") and "not written by Volt" in refused["msg"], refused
    assert target.exists("/etc/systemd/nspawn/theirs.nspawn"), "another tool's file is never removed"
