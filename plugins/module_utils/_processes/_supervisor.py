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

Two processes run per container: the supervisor and its log pump (a subshell reading the
container's output from a FIFO, so that a rotation never loses or cuts a line). Both are in
the session the supervisor leads, so a stop can find what is left by proof.
"""

from __future__ import annotations

import os

NAME = "volt-supervise"  # the supervisor's $0: with its container directory, it names it in ps

# Files the supervisor keeps in the container's directory.
EXIT_FILE = "exit"  # the last run's exit status (128+N for signal N); its mtime is the end
RESTARTS_FILE = "restarts"  # restarts since the supervisor started
DONE_FILE = "supervisor.done"  # written as it ends: the pump then leaves
PIPE = os.path.join("logs", ".output")  # the FIFO from the container's output to the pump
LOG = os.path.join("logs", "current.log")

# Backoff as Docker's: 0.1 s, doubled before each next restart up to 60 s, back to 0.1 s after
# a run of 10 s or more.
SCRIPT = r"""
dir=$1 policy=$2 retries=$3 max_size=$4 max_files=$5 sleep_bin=$6 mv_bin=$7 size=$8
shift 8
umask 077
log=$dir/logs/current.log fifo=$dir/logs/.output
trap '' HUP
trap 'stopping=1 interrupted=1' TERM INT

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

pump &
restarts=0 delay=100
printf '0\n' > "$dir/restarts"
while :; do
    began=$(uptime)
    "$@" < /dev/null > "$fifo" 2>&1 &
    pid=$!
    interrupted=
    wait "$pid"
    code=$?
    while [ -n "$interrupted" ]; do
        interrupted=
        wait "$pid"
        code=$?
    done
    printf '%d\n' "$code" > "$dir/exit"
    [ -z "$stopping" ] || break
    case $policy in
        no) break ;;
        on-failure) [ "$code" -ne 0 ] || break ;;
    esac
    [ "$retries" -eq 0 ] || [ "$restarts" -lt "$retries" ] || break
    [ $(($(uptime) - began)) -lt 10 ] || delay=100
    "$sleep_bin" "$((delay / 1000)).$((delay / 100 % 10))$((delay / 10 % 10))$((delay % 10))" &
    pid=$!
    wait "$pid"
    [ -z "$stopping" ] || { kill "$pid" 2>/dev/null; break; }
    delay=$((delay * 2))
    [ "$delay" -le 60000 ] || delay=60000
    restarts=$((restarts + 1))
    printf '%d\n' "$restarts" > "$dir/restarts"
    printf '[volt] restart %d after exit status %d\n' "$restarts" "$code" >> "$log"
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
) -> list[str]:
    """The supervisor's command line for a payload (proot's argv)."""
    settings = [policy, str(retries), str(max_size), str(max_files), sleep, mv, str(log_size)]
    return [shell, "-c", SCRIPT, NAME, container_dir, *settings, *payload]


def is_supervisor(cmdline: list[str] | None, container_dir: str) -> bool:
    """Whether a process's command line is the supervisor (or its pump) of this container."""
    return bool(cmdline) and len(cmdline) > 4 and cmdline[2:5] == [SCRIPT, NAME, container_dir]


def prepare(container_dir: str) -> None:
    """Before a supervisor starts: a fresh FIFO, no done mark of an earlier one."""
    pipe = os.path.join(container_dir, PIPE)
    for path in (pipe, os.path.join(container_dir, DONE_FILE)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
    os.mkfifo(pipe, 0o600)


def read_count(container_dir: str) -> int:
    """Restarts the supervisor made (0 before it wrote any)."""
    try:
        fd = os.open(os.path.join(container_dir, RESTARTS_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0
    with os.fdopen(fd, encoding="ascii", errors="replace") as handle:
        text = handle.read(32).strip()
    return int(text) if text.isdigit() else 0
