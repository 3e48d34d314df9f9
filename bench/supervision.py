"""Benchmark: what proot supervision costs, and how fast it brings a killed service back.

Starts N (default 10) proot containers, each a busybox httpd with restart_policy always, in a
scratch data dir, then measures
  - memory: resident (RSS) and proportional (PSS) size of all supervision processes (each
    container's supervisor and log pump), against one idle python3 (what a supervisor written
    in Python would cost per container);
  - idle CPU: CPU time and context switches of the supervision processes over an idle window
    (no health check), i.e. whether anything wakes up;
  - recovery: the time from `kill -9` of a container's httpd to its page answering again,
    against a volt_container run that starts a stopped container (the recovery a playbook
    run gave before);
  - health checks: the same N containers with a probe every --interval seconds: CPU per probe
    (the probe's proot included), from the checker processes' reaped children.
Timings are printed, never asserted: the machine is shared and noisy.

Usage: .venv/bin/python bench/supervision.py [--containers 10] [--idle 20] [--interval 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from noop_loop import playbook, scratch
from noop_loop import run as ansible

CLOCK = os.sysconf("SC_CLK_TCK")
BASE_PORT = 18300


def add_applets(data_dir: str) -> None:
    image = os.path.join(data_dir, "images", "busybox")
    for applet in ("httpd", "wget", "test"):
        os.symlink("busybox", os.path.join(image, "bin", applet))
    os.makedirs(os.path.join(image, "srv", "www"))
    with open(os.path.join(image, "srv", "www", "index.html"), "w") as handle:
        handle.write("up\n")


def containers_play(data_dir: str, count: int, proot: str, health: float | None, state: str = "started") -> str:
    lines = [
        "    - name: Supervised web servers",
        "      armoredgate.volt.volt_container:",
        '        name: "web{{ item }}"',
        "        image: busybox",
        f'        command: [httpd, -f, -p, "{{{{ {BASE_PORT} + item }}}}", -h, /srv/www]',
        "        restart_policy: always",
        "        start_grace_period: 0",
        f"        state: {state}",
        f"        data_dir: {data_dir}",
        f"        proot_path: {proot}",
        "        backend: proot",
    ]
    if health:
        lines += [
            "        healthcheck:",
            f'          test: [wget, -q, -O-, "http://127.0.0.1:{{{{ {BASE_PORT} + item }}}}/"]',
            f"          interval: {health}",
        ]
    lines.append(f'      loop: "{{{{ range({count}) | list }}}}"')
    return "\n".join(lines) + "\n"


def supervision(data_dir: str) -> list[int]:
    """pids of the supervisors, pumps and checkers of containers in data_dir."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    argv = handle.read().split(b"\0")
            except OSError:
                continue
            if len(argv) > 4 and argv[3] == b"volt-supervise" and argv[4].startswith(data_dir.encode()):
                found.append(int(entry))
    return found


def memory(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in KiB, summed."""
    rss = pss = 0
    for pid in pids:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return rss, pss


def cpu(pids: list[int], children: bool = False) -> tuple[float, int]:
    """(CPU seconds, context switches) of pids (children: of their reaped children instead)."""
    ticks = switches = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks += int(fields[13]) + int(fields[14]) if children else int(fields[11]) + int(fields[12])
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    switches += int(line.split()[1])
    return ticks / CLOCK, switches


def python_rss() -> int:
    child = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    try:
        return memory([child.pid])[0]
    finally:
        child.kill()
        child.wait()


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=0.5) as response:
            return response.read() == b"up\n"
    except OSError:
        return False


def guest_httpd(index: int) -> int | None:
    """The pid of container web<index>'s httpd: traced (by its proot), on its own port."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
            with open(f"/proc/{entry}/status") as handle:
                traced = any(line.startswith("TracerPid:") and line.split()[1] != "0" for line in handle)
        except OSError:
            continue
        if traced and argv[:1] == [b"httpd"] and str(BASE_PORT + index).encode() in argv:
            return int(entry)
    return None


def measure_idle(data_dir: str, count: int, idle: float) -> None:
    pids = supervision(data_dir)
    rss, pss = memory(pids)
    python = python_rss()
    print(f"{count} containers: {len(pids)} supervision processes, RSS {rss / 1024:.1f} MiB, PSS {pss / 1024:.1f} MiB")
    print(f"  per container: RSS {rss / count / 1024:.2f} MiB, PSS {pss / count / 1024:.2f} MiB")
    ratio = rss / (count * python)
    print(f"  one idle python3 -S: RSS {python / 1024:.1f} MiB; supervision / ({count} x python3) = {ratio:.3f}")
    before = cpu(pids)
    time.sleep(idle)
    after = cpu(pids)
    print(f"  idle {idle:g} s: CPU {after[0] - before[0]:.3f} s, context switches {after[1] - before[1]}")


def measure_recovery(workdir: str, data_dir: str, env: dict, proot: str, *, kills: int, count: int) -> None:
    recoveries = []
    for attempt in range(kills):
        index = attempt % count
        pid = guest_httpd(index)
        if pid is None:
            continue
        begin = time.perf_counter()
        os.kill(pid, signal.SIGKILL)
        while answers(BASE_PORT + index) and time.perf_counter() - begin < 5:
            time.sleep(0.005)  # until the kill has landed
        while not answers(BASE_PORT + index):
            time.sleep(0.005)
        recoveries.append(time.perf_counter() - begin)
        time.sleep(0.5)
    stopped = playbook(workdir, "stop", containers_play(data_dir, 1, proot, None, "stopped"))
    started = playbook(workdir, "start", containers_play(data_dir, 1, proot, None, "started"))
    playbook_starts = []
    for _round in range(3):
        ansible(stopped, env)
        playbook_starts.append(ansible(started, env))
    kill = statistics.median(recoveries)
    run = statistics.median(playbook_starts)
    print(f"  kill -9 to answering again: median {kill:.3f} s over {len(recoveries)} (first backoff 0.1 s)")
    print(f"  a volt_container run that starts a stopped one: median {run:.3f} s; ratio {kill / run:.3f}")


def measure_health(workdir: str, data_dir: str, env: dict, proot: str, *, count: int, interval: float, idle: float):
    checked = playbook(workdir, "checked", containers_play(data_dir, count, proot, interval))
    ansible(checked, env)
    time.sleep(interval * 2)
    pids = supervision(data_dir)
    rss, _pss = memory(pids)
    before_children = cpu(pids, children=True)[0]
    before_own = cpu(pids)[0]
    window = max(idle, interval * 5)
    time.sleep(window)
    after_children = cpu(pids, children=True)[0]
    after_own = cpu(pids)[0]
    probes = count * window / interval
    spent = (after_children - before_children) + (after_own - before_own)
    print(f"with a health check every {interval:g} s: {len(pids)} supervision processes, RSS {rss / 1024:.1f} MiB")
    print(f"  CPU {spent:.2f} s over {window:g} s: about {spent / probes * 1000:.1f} ms per probe")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--containers", type=int, default=10)
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle window")
    parser.add_argument("--interval", type=float, default=2.0, help="health check interval")
    parser.add_argument("--kills", type=int, default=5)
    args = parser.parse_args()
    proot = os.environ.get("VOLT_PROOT_54") or shutil.which("proot")
    workdir, data_dir, env = scratch("volt-bench-supervision-")
    add_applets(data_dir)
    try:
        ansible(playbook(workdir, "up", containers_play(data_dir, args.containers, proot, None)), env)
        measure_idle(data_dir, args.containers, args.idle)
        measure_recovery(workdir, data_dir, env, proot, kills=args.kills, count=args.containers)
        measure_health(workdir, data_dir, env, proot, count=args.containers, interval=args.interval, idle=args.idle)
    finally:
        ansible(playbook(workdir, "down", containers_play(data_dir, args.containers, proot, None, "absent")), env)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
