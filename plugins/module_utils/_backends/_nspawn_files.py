# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Text of the systemd files behind a container: the template unit, .nspawn settings, drop-ins.

Pure functions of the container's config, so re-running renders the same bytes and a file is
rewritten (and systemd reloaded) only when its content really changes.
"""

from __future__ import annotations

import json
import re

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _systemd_syntax
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import DEFAULT_STOP_SIGNAL, Launch
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_config import signal_number
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import split_port

TEMPLATE_NAME = "volt-container@.service"
# The module's default stop_timeout, for a record written before the container kept its own.
DEFAULT_STOP_TIMEOUT = 10
WAIT_ONLINE = "/usr/lib/systemd/systemd-networkd-wait-online"
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


def health_timer_name(name: str) -> str:
    return f"volt-health@{unit_escape(name)}.timer"


def health_service_name(name: str) -> str:
    return f"volt-health@{unit_escape(name)}.service"


def quote(arg: str) -> str:
    """One argument as a word of a .nspawn Parameters= line (see _systemd_syntax)."""
    return _systemd_syntax.assignment("nspawn", "Parameters", [arg], "command argument")[len("Parameters=") :]


def _environment(record: dict, guest_env: dict, secrets: dict) -> list[str]:
    """Environment= lines: the image's env and env, then secret_env (which wins; the file is 0600)."""
    env = {"CONTAINER_NAME": record.get("name", ""), **guest_env}
    lines = []
    for key, value in sorted(env.items()):
        lines.append(_systemd_syntax.assignment("nspawn", "Environment", (key, value), f"env {key}"))
    for key, value in sorted(secrets.items()):
        lines.append(_systemd_syntax.assignment("nspawn", "Environment", (key, value), f"secret_env {key}", True))
    return lines


def render_nspawn(config: dict, record: dict, secrets: dict | None = None) -> str:
    """The container's /etc/systemd/nspawn/<name>.nspawn; its first line holds the Volt record.

    Every value goes through _systemd_syntax.assignment(), which refuses what systemd could not
    read back exactly; the record is ASCII JSON (json.dumps escapes control characters).
    """

    def line(setting: str, value: object, option: str) -> str:
        return _systemd_syntax.assignment("nspawn", setting, value, option)

    lines = [_systemd_syntax.comment(RECORD_PREFIX + json.dumps(record, sort_keys=True, separators=(",", ":")))]
    lines += _exec_section(config, record, secrets or {})
    binds = config.get("volumes") or []
    if binds:
        lines.append("[Files]")
        for volume in binds:
            host, guest, mode = _volume_parts(volume)
            lines.append(line("BindReadOnly" if mode == "ro" else "Bind", (host, guest), "volume"))
    lines.append("[Network]")
    network = config.get("network") or "host"
    if network == "host":
        lines.append(line("VirtualEthernet", "no", "network"))
    elif network == "none":
        lines.append(line("Private", "yes", "network"))
    else:
        lines.append(line("Bridge", network, "network"))
    for port in config.get("ports") or []:
        host, guest, protocol = split_port(port)
        lines.append(line("Port", f"{protocol}:{host}:{guest}", "port"))
    return "\n".join(lines) + "\n"


def _exec_section(config: dict, record: dict, secrets: dict) -> list[str]:
    """The [Exec] section: how the payload starts (program, environment, directory, user, name)."""

    def line(setting: str, value: object, option: str) -> str:
        return _systemd_syntax.assignment("nspawn", setting, value, option)

    lines = ["[Exec]"]
    if config.get("boot"):
        lines.append(line("Boot", "yes", "boot"))
    else:
        # a stub init as PID 1 reaps zombies
        lines.append(line("ProcessTwo", "yes", "boot"))
        # What nspawn sends the stub init when the unit stops it: nspawn's default, SIGKILL,
        # would kill every process at once, and the stub answers SIGRTMIN+3 with SIGTERM and
        # then SIGHUP to the payload. The stub ignores SIGTERM: the unit (KillMode=control-group,
        # see render_dropin) signals every process itself.
        lines.append(line("KillSignal", "SIGTERM", "boot"))
    launch = Launch(config)
    if config.get("boot"):  # arguments for the container's own init, never the image's program
        if config.get("command"):
            lines.append(line("Parameters", list(config["command"]), "command"))
    elif launch.argv:
        lines.append(line("Parameters", launch.argv, launch.origin))
    elif record.get("entrypoint"):
        lines.append(line("Parameters", list(record["entrypoint"]), "the image's entrypoint"))
    lines += _environment(record, launch.env, secrets)
    if launch.workdir != "/":
        lines.append(line("WorkingDirectory", launch.workdir, "workdir"))
    if record.get("user"):
        lines.append(line("User", record["user"], "user"))
    if config.get("hostname"):
        lines.append(line("Hostname", config["hostname"], "hostname"))
    return lines


def _volume_parts(volume: str) -> tuple[str, str, str]:
    """HOST:CONTAINER[:ro|rw] as the options normalise it (neither path holds a ':')."""
    parts = volume.split(":")
    mode = parts.pop() if len(parts) == 3 and parts[2] in ("ro", "rw") else "rw"
    if len(parts) != 2:
        raise VoltError(f"volume {volume!r} must look like /host/path:/container/path[:ro|rw]")
    return parts[0], parts[1], mode


def parse_record(text: str) -> dict | None:
    """The Volt record from the first line of a .nspawn file, or None if Volt did not write it.

    ValueError if the line is Volt's but does not hold a JSON mapping.
    """
    first = text.split("\n", 1)[0]
    if not first.startswith(RECORD_PREFIX):
        return None
    record = json.loads(first[len(RECORD_PREFIX) :])
    if not isinstance(record, dict):
        raise ValueError(f"the record is a JSON {type(record).__name__}, not a mapping")
    return record


def render_dropin(
    config: dict,
    rootfs: str,
    host0: list[str] | None = None,
    exit_file: str | None = None,
    health_timer: str | None = None,
) -> str:
    """Per-container unit settings: where the rootfs is, limits and the restart policy; host0 is
    the command that configures the container's network after each start (see _nspawn_network);
    exit_file where each run's end is written (see EXIT_RECORD); health_timer the timer each
    start starts (its template binds it to this unit, so it stops with it)."""

    def line(setting: str, value: object, option: str) -> str:
        return _systemd_syntax.assignment("unit", setting, value, option)

    lines = ["# Managed by armoredgate.volt", "[Unit]", *_start_limit(config), *_bridge_ordering(config)]
    if health_timer:
        lines.append(line("Wants", [health_timer], "healthcheck"))
    lines.append("[Service]")
    lines.append(line("Environment", ("VOLT_ROOTFS", rootfs), "data_dir"))
    lines += _waiting_for_the_bridge(config)
    if config.get("memory"):
        lines.append(line("MemoryMax", config["memory"], "memory"))
    if config.get("cpus"):
        lines.append(line("CPUQuota", round(config["cpus"] * 100), "cpus"))
    lines += _restarting(config)
    lines += _stopping(config)
    if host0:
        lines.append(line("ExecStartPost", host0, "network"))
    if exit_file:
        lines.append(line("ExecStopPost", ["/bin/sh", "-c", EXIT_RECORD, "volt-exit", exit_file], "name"))
    return "\n".join(lines) + "\n"


# How each run ended, kept where inspect finds it: systemd forgets a unit that stopped cleanly
# (its exit status goes with it), but runs ExecStopPost= after every run, stopped or crashed,
# with the result in its environment. In /run: it is about this boot only.
EXIT_RECORD = (
    'mkdir -p "${1%/*}" && printf \'%s %s %s\\n\' "$SERVICE_RESULT" "$EXIT_CODE" "$EXIT_STATUS" > "$1.new" '
    '&& mv -f "$1.new" "$1"'
)


def parse_exit_record(text: str) -> int | None:
    """The exit status (a shell's: 128+N for signal N) of an EXIT_RECORD line."""
    fields = text.split()
    if len(fields) != 3:
        return None
    _result, kind, status = fields
    if kind == "exited" and status.isdigit():
        return int(status)
    if kind in ("killed", "dumped"):
        from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_config import signal_name

        try:
            return 128 + signal_number(signal_name(status))
        except VoltError:
            return None
    return None


# unless-stopped restarts as always does; what differs is the boot (see SystemdBackend.boot_enabled).
_RESTART = {"no": "no", "on-failure": "on-failure", "always": "always", "unless-stopped": "always"}
RESTART_DELAY_MS = 100


def restart_limit(config: dict) -> int:
    """How many restarts the unit makes after a start (0: no limit, or no restarts at all)."""
    if (config.get("restart_policy") or "no") == "no":
        return 0
    return config.get("restart_retries") or 0


def _restarting(config: dict) -> list[str]:
    policy = config.get("restart_policy") or "no"
    if policy not in _RESTART:
        raise VoltError(f"restart_policy {policy!r} must be one of {', '.join(_RESTART)}", option="restart_policy")
    return [
        _systemd_syntax.assignment("unit", "Restart", _RESTART[policy], "restart_policy"),
        _systemd_syntax.assignment("unit", "RestartSec", RESTART_DELAY_MS, "restart_policy"),
    ]


def _start_limit(config: dict) -> list[str]:
    """restart_retries N: the N+1st start (the first and N restarts) is the unit's last; with an
    interval of infinity the count only goes when the backend's start resets it (reset-failed)
    or the host boots. So an administrator's `systemctl start` after the limit is refused
    ("start request repeated too quickly") until `systemctl reset-failed`. Otherwise no limit:
    systemd's default (5 starts in 10 s) would end a crash loop the policy asks to go on."""
    retries = restart_limit(config)
    if not retries:
        return [_systemd_syntax.assignment("unit", "StartLimitIntervalSec", 0, "restart_retries")]
    burst = retries + 1 if isinstance(retries, int) and not isinstance(retries, bool) else retries
    return [
        _systemd_syntax.assignment("unit", "StartLimitIntervalSec", "infinity", "restart_retries"),
        _systemd_syntax.assignment("unit", "StartLimitBurst", burst, "restart_retries"),
    ]


def _bridge(config: dict) -> str | None:
    network = config.get("network") or "host"
    return None if network in ("host", "none") else network


def _bridge_ordering(config: dict) -> list[str]:
    """A container on a bridge starts after networkd (if networkd runs at all): at boot the
    bridge does not exist until networkd has made it. A container on the host's network waits
    for nothing."""
    if not _bridge(config):
        return []
    return [_systemd_syntax.assignment("unit", "After", ["systemd-networkd.service"], "network")]


def _waiting_for_the_bridge(config: dict) -> list[str]:
    """Wait until the bridge exists (and networkd, if it manages it, has configured it).

    Not systemd-networkd-wait-online@BRIDGE.service: it waits for carrier, which a bridge
    without containers attached never has. No .device unit either: containers (and hosts that
    are containers) have no udev to make one.
    """
    bridge = _bridge(config)
    if not bridge:
        return []
    command = [WAIT_ONLINE, f"--interface={bridge}:no-carrier", "--timeout=60"]
    return [_systemd_syntax.assignment("unit", "ExecStartPre", command, "network")]


def _stopping(config: dict) -> list[str]:
    """systemctl stop, a restart and a host shutdown stop the container as the module does:
    SIGTERM to every process, SIGKILL after stop_timeout."""

    def line(setting: str, value: object) -> str:
        return _systemd_syntax.assignment("unit", setting, value, "stop_timeout")

    lines = [line("TimeoutStopSec", config.get("stop_timeout", DEFAULT_STOP_TIMEOUT))]
    if not config.get("boot"):
        # A booted container's own init shuts it down (nspawn sends it SIGRTMIN+3: the
        # template's KillMode=mixed); the stub init of the others passes nothing on.
        lines.append(line("KillMode", "control-group"))
        stop_signal = Launch(config).stop_signal
        if stop_signal != DEFAULT_STOP_SIGNAL:
            # First the stop signal to the main process alone (as docker stop does), waiting
            # for the container to end; only what is left then gets the unit's SIGTERM.
            number = str(signal_number(stop_signal))
            lines.append(line("ExecStop", ["/bin/sh", "-c", _SIGNAL_MAIN_PROCESS, "volt-stop", number]))
    return lines


# nspawn ($MAINPID) -> the stub init (the container's PID 1) -> the payload (PID 2).
_SIGNAL_MAIN_PROCESS = (
    'for init in $(cat /proc/"$MAINPID"/task/"$MAINPID"/children); do '
    'for pid in $(cat /proc/"$init"/task/"$init"/children); do kill -"$1" "$pid"; done; done; '
    'while kill -0 "$MAINPID" 2>/dev/null; do sleep 0.1; done'
)


# -- health checks ------------------------------------------------------------------------------
# A timer per container runs a oneshot service per probe: systemd starts, stops and accounts for
# both, and no process of Volt's waits between probes. Both templates are fixed; the settings of
# each container are in its instances' drop-ins.
HEALTH_TIMER_TEMPLATE = "volt-health@.timer"
HEALTH_SERVICE_TEMPLATE = "volt-health@.service"
HEALTH_TIMER_UNIT = """\
# Managed by armoredgate.volt: the health check of the Volt container of the same instance.
[Unit]
Description=Health check timer of Volt container %I
# The container's drop-in Wants= this timer; its stop, crash or removal stops the timer too.
BindsTo=volt-container@%i.service
After=volt-container@%i.service

[Timer]
# OnActiveSec=, OnUnitInactiveSec= and AccuracySec= are in each instance's drop-in.
"""
HEALTH_SERVICE_UNIT = """\
# Managed by armoredgate.volt: one probe of a Volt container's health check, run by its timer.
[Unit]
Description=Health check of Volt container %I
# A stop of the container ends a probe under way; nothing here starts the container.
PartOf=volt-container@%i.service
After=volt-container@%i.service
# One start per interval: the default limit (5 starts in 10 s) would end short intervals.
StartLimitIntervalSec=0

[Service]
Type=oneshot
CPUAccounting=yes
# The probe records live here, root's alone, across probes (and go at a reboot).
RuntimeDirectory=volt/health
RuntimeDirectoryMode=0700
RuntimeDirectoryPreserve=yes
# No journal lines for each probe's start and end; the script's own errors still show.
LogLevelMax=notice
SyslogLevel=warning
# ExecStart= and TimeoutStartSec= are in each instance's drop-in.
"""
# Docker's limit for the output a health record keeps.
HEALTH_OUTPUT_MAX = 4096
HEALTH_STATUSES = ("starting", "healthy", "unhealthy")
# The tools of the host the probe script runs (absolute paths: it runs with no PATH).
HEALTH_TOOLS = ("env", "machinectl", "timeout", "nsenter", "mv", "head", "cat")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# One probe, as the timer's service runs it with an empty environment (env -i). The leader comes
# from machined and the probe enters it as volt_exec does (nsenter, root /proc/PID/root, the
# directory changed inside); the guest's environment is sourced in a subshell just before the
# exec. The record ($2): a line "status streak exit-code run" padded to 64 bytes, then the
# output (at most 4 KiB; the rest is drained, so the probe's exit code stays its own). The run
# (leader pid:start time) tells a restarted container from the last one: its state starts over.
HEALTH_PROBE = r"""
set -f
umask 077
name=$1 record=$2 envfile=$3 interval=$4 limit=$5 retries=$6 grace=$7 signal=$8 target=$9
shift 9
hz=$1 machinectl=$2 timeout=$3 nsenter=$4 mv=$5 head=$6 cat=$7 ids=$8
shift 9
leader=$("$machinectl" show "$name" --property=Leader --value 2>/dev/null) || exit 0
case $leader in '' | 0 | *[!0-9]*) exit 0 ;; esac
read -r stat < "/proc/$leader/stat" || exit 0
started() { set -- $1; shift 19; began=$1; }
started "${stat##*) }"
read -r up idle < /proc/uptime
up=${up%.*}${up#*.}
while [ "${#up}" -gt 1 ] && [ "${up#0}" != "$up" ]; do up=${up#0}; done
age=$((up - began * 100 / hz))
run=$leader:$began
status=starting streak=0 code=-1 last=
[ ! -f "$record" ] || read -r status streak code last < "$record"
if [ "$last" != "$run" ]; then
    status=starting streak=0 code=-1
    if [ "$age" -lt "$interval" ]; then
        printf '%s 0 -1 %s\n' starting "$run" > "$record.new" && "$mv" -f "$record.new" "$record"
        exit 0
    fi
fi
end_payload() {
    if [ "$target" = leader ]; then kill -"$signal" "$leader"; return; fi
    kids=
    read -r kids < "/proc/$leader/task/$leader/children"
    for kid in $kids; do
        while read -r key pids; do
            [ "$key" = NSpid: ] || continue
            set -- $pids
            shift $(($# - 1))
            [ "$1" != 2 ] || kill -"$signal" "$kid"
            break
        done < "/proc/$kid/status"
    done
}
if [ "$ids" = 0:0 ]; then set -- -- "$@"; else set -- --setuid "${ids%:*}" --setgid "${ids#*:}" -- "$@"; fi
set -- "$timeout" -s KILL "$limit" "$nsenter" --target "$leader" --all --root "--wd=/proc/$leader/root" "$@"
printf '%63s\n' '' > "$record.new"
{ (unset PWD; . "$envfile" && exec "$@") < /dev/null 2>&1; echo "$?" > "$record.rc"; } |
    { "$head" -c 4096 >> "$record.new"; "$cat" > /dev/null; }
read -r code < "$record.rc" || code=255
if [ "$code" -eq 0 ]; then
    status=healthy streak=0
elif [ "$status" != starting ] || [ "$age" -ge "$grace" ]; then
    streak=$((streak + 1))
    if [ "$streak" -ge "$retries" ]; then
        [ "$status" = unhealthy ] || [ "$signal" = 0 ] || end_payload
        status=unhealthy
    fi
fi
printf '%s %d %d %s' "$status" "$streak" "$code" "$run" 1<> "$record.new"
"$mv" -f "$record.new" "$record"
"""


def _one_line(script: str) -> str:
    """A script as one line (a unit setting is one line): newlines become '; ', or a space
    after a word that continues the command."""
    lines = [line.strip() for line in script.strip().splitlines() if line.strip()]
    joined = lines[0]
    for previous, line in zip(lines, lines[1:]):
        joined += (" " if previous.endswith(("then", "do", "else", "{", "|", "&&", "||")) else "; ") + line
    return joined


HEALTH_PROBE_LINE = _one_line(HEALTH_PROBE)
# Into the probe's working directory inside the container (as exec_command does).
_HEALTH_CD = 'cd -- "$1" || exit 125; shift; exec "$@"'


def health_probe(check: dict, workdir: str) -> list[str]:
    """The command run in the container: the test, in the container's working directory."""
    if workdir == "/":
        return list(check["test"])
    return ["/bin/sh", "-c", _HEALTH_CD, "volt-health", workdir, *check["test"]]


def render_health_timer(check: dict) -> str:
    """The timer's drop-in: the first probe one interval after the start, then one interval
    after each probe ends (a slow probe never overlaps the next)."""
    interval = max(1, round(check["interval"] * 1000))

    def line(setting: str, value: object) -> str:
        return _systemd_syntax.assignment("unit", setting, value, "healthcheck interval")

    lines = ["# Managed by armoredgate.volt", "[Timer]", line("OnActiveSec", interval)]
    lines.append(line("OnUnitInactiveSec", interval))
    # Small, so probes come when asked; a twentieth of the interval still lets systemd batch.
    lines.append(line("AccuracySec", max(1, min(1000, interval // 20))))
    return "\n".join(lines) + "\n"


def render_health_service(
    name: str,
    check: dict,
    probe: list[str],
    *,
    record: str,
    env_file: str,
    ids: tuple[int, int],
    signal: int,
    target: str,
    hz: int,
    tools: dict[str, str],
) -> str:
    """The service's drop-in: the probe script with the container's settings (see HEALTH_PROBE).
    signal is what the main process (target 'payload', or the 'leader' of a booted container)
    gets on becoming unhealthy, 0 for nothing."""
    import math

    settings = [
        name,
        record,
        env_file,
        str(max(1, round(check["interval"] * 100))),  # centiseconds, as /proc/uptime counts
        f"{check['timeout']:g}",
        str(check["retries"]),
        str(round(check["start_period"] * 100)),
        str(signal),
        target,
        str(hz),
        *(tools[tool] for tool in HEALTH_TOOLS[1:]),
        f"{ids[0]}:{ids[1]}",
        "--",
    ]
    command = [tools["env"], "-i", "/bin/sh", "-c", HEALTH_PROBE_LINE, "volt-health", *settings, *probe]
    lines = ["# Managed by armoredgate.volt", "[Service]"]
    lines.append(_systemd_syntax.assignment("unit", "ExecStart", command, "healthcheck test"))
    # timeout(1) ends the probe; this only bounds the script around it.
    limit = math.ceil(check["timeout"]) + 30
    lines.append(_systemd_syntax.assignment("unit", "TimeoutStartSec", limit, "healthcheck timeout"))
    return "\n".join(lines) + "\n"


def render_health_env(env: dict[str, str]) -> str:
    """The probe's environment as sh code the probe script sources (each value quoted for sh;
    a variable name that is not one would be code, so it is refused)."""
    import shlex

    lines = []
    for key, value in sorted(env.items()):
        if not _ENV_KEY_RE.fullmatch(key):
            raise VoltError(f"env {key!r} is not a valid variable name", option="env")
        lines.append(f"export {key}={shlex.quote(value)}\n")
    return "".join(lines)


def parse_health_record(data: bytes, run: str | None) -> dict | None:
    """The health of a HEALTH_PROBE record, or None when it is not about `run` (the running
    container's leader pid:start time) or holds no verdict yet."""
    first, _newline, output = data.partition(b"\n")
    fields = first.decode("ascii", "replace").split()
    if len(fields) != 4 or fields[0] not in HEALTH_STATUSES or run is None or fields[3] != run:
        return None
    if not fields[1].isdigit() or not fields[2].lstrip("-").isdigit():
        return None
    code = int(fields[2])
    return {
        "status": fields[0],
        "failing_streak": int(fields[1]),
        "last_exit_code": code if code >= 0 else None,
        "last_output": output[:HEALTH_OUTPUT_MAX].decode("utf-8", "replace"),
    }
