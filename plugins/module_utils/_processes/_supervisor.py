# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The supervisor of a proot container: a host shell that owns the container's proot.

It starts proot as its own child and waits on it (no polling), writes each run's exit status
and the restart count into the container's directory, restarts it by its restart policy with
Docker's backoff, and copies its output into a log it rotates by size. It is written for the
host's POSIX sh (dash on Debian and Termux: about 1.5 MB resident, where a Python process
takes 10 MB, and a phone may run ten of them) and uses only builtins, `sleep` and `mv`, whose
host paths it is given: a guest's environment may have no PATH to the host's tools (Termux).

Two processes run per container: the supervisor, which also runs the health check (between
its waits), and its log pump (a subshell reading the container's output from a FIFO, so that a
rotation never loses or cuts a line). Both are in the session the supervisor leads, so a stop
can find what is left by proof.
"""

from __future__ import annotations

import os

NAME = "volt-supervise"  # the supervisor's $0: with its container directory, it names it in ps

# Files the supervisor keeps in the container's directory.
EXIT_FILE = "exit"  # the last run's exit status (128+N for signal N); its mtime is the end
RESTARTS_FILE = "restarts"  # restarts since the supervisor started
RUN_FILE = "run"  # the pid of the proot it runs now
# The health check's files, in a directory of their own: rewritten at every probe.
HEALTH_DIR = "health"
HEALTH_FILE = os.path.join(HEALTH_DIR, "status")  # "status failing-streak last-exit-code"
HEALTH_OUTPUT = os.path.join(HEALTH_DIR, "output")  # the last probe's output
HEALTH_SCRIPT = os.path.join(HEALTH_DIR, "probe.sh")  # the module's: runs the probe in the container
DONE_FILE = "supervisor.done"  # written as it ends: the pump then leaves
PIPE = os.path.join("logs", ".output")  # the FIFO from the container's output to the pump
LOG = os.path.join("logs", "current.log")

# Backoff as Docker's: 0.1 s, doubled before each next restart up to 60 s, back to 0.1 s after
# a run of 10 s or more.
SCRIPT = r"""
dir=$1 policy=$2 retries=$3 max_size=$4 max_files=$5 sleep_bin=$6 mv_bin=$7 size=$8 health=$9
shift 9
umask 077
log=$dir/logs/current.log fifo=$dir/logs/.output
trap '' HUP
trap 'stopping=1' TERM INT

rotate() {
    exec 4>&-
    i=$((max_files - 1))
    if [ "$i" -le 0 ]; then
        : > "$log"
    else
        while [ "$i" -gt 1 ]; do
            [ ! -e "$log.$((i - 1))" ] || "$mv_bin" -f "$log.$((i - 1))" "$log.$i"
            i=$((i - 1))
        done
        "$mv_bin" -f "$log" "$log.1"
    fi
    exec 4>>"$log"
}

pump() {
    trap - TERM INT
    exec 4>>"$log"
    while :; do
        while IFS= read -r line || [ -n "$line" ]; do
            n=$((${#line} + 1))
            if [ $((size + n)) -gt "$max_size" ] && [ "$size" -gt 0 ]; then
                rotate
                size=0
            fi
            printf '%s\n' "$line" >&4
            size=$((size + n))
            line=
        done < "$fifo"
        [ ! -e "$dir/supervisor.done" ] || exit 0
    done
}

uptime() { read -r up rest < /proc/uptime; echo "${up%.*}"; }

# Writes a state file whole (a new file renamed over the old): a reader sees the old line or the
# new one, never the empty file a truncating write shows for a moment.
put() {
    printf '%s\n' "$2" > "$dir/$1.new" && "$mv_bin" -f "$dir/$1.new" "$dir/$1"
}

alive() { kill -0 "$1" 2>/dev/null; }

# The health check runs in this process, between waits: $health is "interval timeout retries
# start_period restart signal timeout_bin shell"; $dir/health/probe.sh runs the probe inside the
# container. Writes "status streak exit" to $dir/health/status, the probe's output to
# $dir/health/output. A sleep or a probe runs in the background (the timer), and this shell
# waits on it; a trapped SIGCHLD wakes it when the payload ends instead.
tick() {
    "$sleep_bin" "$interval" &
    timer=$! timer_kind=sleep
}

probe() {
    "$timeout_bin" -s KILL "$limit" "$h_shell" "$dir/health/probe.sh" < /dev/null > "$dir/health/output.new" 2>&1 &
    timer=$! timer_kind=probe
}

judge() {
    "$mv_bin" -f "$dir/health/output.new" "$dir/health/output"
    if [ "$1" -eq 0 ]; then
        streak=0 status=healthy
    elif [ $(($(uptime) - began)) -ge "$h_start" ] || [ "$status" != starting ]; then
        streak=$((streak + 1))
        if [ "$streak" -ge "$h_retries" ]; then
            # restart_on_unhealthy: the payload's main process gets the stop signal; the
            # restart policy decides what follows.
            [ "$status" = unhealthy ] || [ "$h_restart" = 0 ] || end_payload
            status=unhealthy
        fi
    fi
    put health/status "$status $streak $1"
}

end_payload() {
    kids=
    read -r kids < "/proc/$pid/task/$pid/children" || [ -n "$kids" ] || return 0  # no newline there
    [ -z "$kids" ] || kill "-$h_signal" $kids 2>/dev/null
}

stop_timer() {
    [ -z "$timer" ] || kill "$timer" 2>/dev/null
    timer=
}

run() {
    "$@" < /dev/null > "$fifo" 2>&1 &
    pid=$!
    put run "$pid"
    began=$(uptime)
    [ "$health" = - ] || tick
}

pump &
if [ "$health" != - ]; then
    set -f
    set -- $health "$@"
    interval=$1 limit=$2 h_retries=$3 h_start=$4 h_restart=$5 h_signal=$6 timeout_bin=$7 h_shell=$8
    shift 8
    set +f
    streak=0 status=starting
    put health/status "starting 0 -1"
    trap ': payload or timer ended' CHLD
fi
restarts=0 delay=100
put restarts 0
run "$@"
while :; do
    if [ -n "$timer" ]; then
        wait "$timer"
        if alive "$timer"; then
            :  # woken by the payload or a signal, not by the timer
        elif [ "$timer_kind" = sleep ]; then
            probe
        else
            wait "$timer"  # its own status, not that of the wait a signal cut short
            judge "$?"
            tick
        fi
        if [ -n "$stopping" ]; then
            stop_timer
        fi
        alive "$pid" && continue
    fi
    while alive "$pid"; do
        wait "$pid"  # cut short by a signal (a stop, a child) while it still runs: again
    done
    wait "$pid"  # its own status, not that of a wait a signal cut short
    code=$?
    stop_timer
    put exit "$code"
    [ -z "$stopping" ] || break
    case $policy in
        no) break ;;
        on-failure) [ "$code" -ne 0 ] || break ;;
    esac
    [ "$retries" -eq 0 ] || [ "$restarts" -lt "$retries" ] || break
    [ $(($(uptime) - began)) -lt 10 ] || delay=100
    "$sleep_bin" "$((delay / 1000)).$((delay / 100 % 10))$((delay / 10 % 10))$((delay % 10))" &
    backoff=$!
    while alive "$backoff" && [ -z "$stopping" ]; do
        wait "$backoff"
    done
    [ -z "$stopping" ] || { kill "$backoff" 2>/dev/null; break; }
    delay=$((delay * 2))
    [ "$delay" -le 60000 ] || delay=60000
    restarts=$((restarts + 1))
    put restarts "$restarts"
    printf '[volt] restart %d after exit status %d\n' "$restarts" "$code" >> "$log"
    run "$@"
done
: > "$dir/supervisor.done"
: <> "$fifo"
"""


def argv(
    shell: str,
    container_dir: str,
    payload: list[str],
    *,
    policy: str,
    retries: int,
    max_size: int,
    max_files: int,
    sleep: str,
    mv: str,
    log_size: int,
    health: list[str] | None = None,
) -> list[str]:
    """The supervisor's command line for a payload (proot's argv). health: see health_settings."""
    settings = [policy, str(retries), str(max_size), str(max_files), sleep, mv, str(log_size)]
    settings.append(" ".join(health) if health else "-")
    return [shell, "-c", SCRIPT, NAME, container_dir, *settings, *payload]


def health_settings(check: dict, restart: bool, signum: int, timeout: str, shell: str) -> list[str]:
    """The supervisor's health words for a canonical healthcheck (see _options._healthcheck)."""
    import math

    for path in (timeout, shell):
        if any(char.isspace() for char in path):  # they travel as words of one argument
            raise ValueError(f"a host program path with white space cannot run health checks: {path!r}")
    return [
        f"{check['interval']:g}",
        f"{check['timeout']:g}",
        str(check["retries"]),
        str(math.ceil(check["start_period"])),
        "1" if restart else "0",
        str(signum),
        timeout,
        shell,
    ]


def write_probe(container_dir: str, host_argv: list[str]) -> None:
    """The probe script the health check runs: the host command line that runs the test in the
    container, each word quoted for sh."""
    import shlex

    from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records

    text = "exec " + " ".join(shlex.quote(arg) for arg in host_argv) + "\n"
    os.makedirs(os.path.join(container_dir, HEALTH_DIR), 0o700, exist_ok=True)
    _records.atomic_write(os.path.join(container_dir, HEALTH_SCRIPT), text)


# What a container with a health check reports before its first probe.
NO_PROBE_YET = {"status": "starting", "failing_streak": 0, "last_exit_code": None, "last_output": ""}


def read_health(container_dir: str) -> dict | None:
    """The health check's state as the supervisor wrote it, or None (no check, or not yet)."""
    text = _read_small(os.path.join(container_dir, HEALTH_FILE), 64)
    fields = (text or "").split()
    if len(fields) != 3 or fields[0] not in ("starting", "healthy", "unhealthy"):
        return None
    output = _read_small(os.path.join(container_dir, HEALTH_OUTPUT), 4096) or ""
    code = int(fields[2]) if fields[2].lstrip("-").isdigit() else None
    return {
        "status": fields[0],
        "failing_streak": int(fields[1]) if fields[1].isdigit() else 0,
        "last_exit_code": None if code is None or code < 0 else code,
        "last_output": output,
    }


def _read_small(path: str, limit: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read(limit)


def is_supervisor(cmdline: list[str] | None, container_dir: str) -> bool:
    """Whether a process's command line is the supervisor (or its pump) of this container."""
    return bool(cmdline) and len(cmdline) > 4 and cmdline[2:5] == [SCRIPT, NAME, container_dir]


def prepare(container_dir: str) -> None:
    """Before a supervisor starts: a fresh FIFO, no done mark or health of an earlier one."""
    health = os.path.join(container_dir, HEALTH_DIR)
    if os.path.islink(health) or (os.path.lexists(health) and not os.path.isdir(health)):
        os.unlink(health)  # not a directory: not what this version keeps there
    pipe = os.path.join(container_dir, PIPE)
    stale = (DONE_FILE, HEALTH_FILE, HEALTH_OUTPUT, HEALTH_SCRIPT, RUN_FILE)  # health/ itself stays
    for path in (pipe, *(os.path.join(container_dir, name) for name in stale)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    os.mkfifo(pipe, 0o600)


def read_count(container_dir: str) -> int:
    """Restarts the supervisor made (0 before it wrote any)."""
    text = (_read_small(os.path.join(container_dir, RESTARTS_FILE), 32) or "").strip()
    return int(text) if text.isdigit() else 0
