"""Benchmark: how playbooks/site.yml's converge and re-converge time grows with the number of
hosts and of containers per host.

Uses the test fleet (tests/fleet/fleet; VOLT_FLEET_DIR if it is running with the hosts asked for,
else it boots one and destroys it afterwards) with systemd hosts sys1..sysN. For each number of
containers per host (default 10 and 50) and each number of hosts (default 1, 3 and 6) it times
  converge     site.yml with every container new (busybox `sleep`, the default
               start_grace_period); the hosts' bridge, unit template and image are in place, as on
               a fleet that is given new containers;
  re-converge  site.yml again, nothing to change (every host must report changed=0);
then, at the most hosts with the fewest containers, re-converges once more with one setting
changed at a time: pipelining off, strategy free, and fewer forks. Each point has containers of
its own; all are removed at the end.
Prints wall seconds, seconds per host and per container, and the controller's CPU seconds:
ansible-playbook and the processes it waits for (its workers and ssh clients; not the persistent
ssh master, nor anything on the hosts). The fleet's hosts share this machine's CPUs, so the wall
time also holds their work, which a real fleet does in parallel on its own machines.
Timings are printed, never asserted.

Usage: .venv/bin/python bench/fleet_scale.py [--hosts 1,3,6] [--containers 10,50] [--forks 6]
       (as root, after scripts/bootstrap)
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(TOP, "build", "collections"))

from tests.integration.fleet import test_site_fleet as fleet_test  # noqa: E402  (the busybox workload)

SITE = os.path.join(TOP, "playbooks", "site.yml")
ROOTFS = "/root/fleet-busybox"  # what fleet_test.PREPARE builds on a host whose user is root


def containers(count: int, state: str, prefix: str = "scale") -> list[dict]:
    return [
        {
            "name": f"{prefix}-{number:03d}",
            "image": "scale-busybox",
            "command": ["sleep", "1000000"],
            "env": {"SLOT": str(number)},
            "state": state,
            "stop_signal": "SIGKILL",  # sleep as PID 1 ignores SIGTERM: removing is not measured
        }
        for number in range(count)
    ]


class Run:
    def __init__(self, fleet: str, workdir: str, forks: int):
        self.fleet, self.workdir, self.forks = fleet, workdir, forks

    def playbook(
        self, play: str, hosts: list[str], variables: dict, env: dict | None = None
    ) -> tuple[float, float, dict]:
        """Wall and CPU seconds of one ansible-playbook run, and each host's changed count."""
        path = os.path.join(self.workdir, "vars.yml")
        with open(path, "w") as handle:
            yaml.safe_dump({"volt_hosts": ",".join(hosts), **variables}, handle)
        environ = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_FORKS=str(self.forks))
        environ.update(env or {})
        program = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        argv = [program, "-i", fleet_test.inventory(self.fleet), "-e", f"@{path}", play]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        begin = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=environ, check=False, cwd=TOP)
        wall = time.perf_counter() - begin
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return wall, cpu, fleet_test.recap(result)

    def site(self, hosts, count, state, env=None, *, image="present", prefix="scale", **extra):
        variables = {
            "volt_images": [{"name": "scale-busybox", "path": ROOTFS, "state": image}],
            "volt_containers": containers(count, state, prefix),
            **extra,
        }
        return self.playbook(SITE, hosts, variables, env)


def prepare(run: Run, hosts: list[str]) -> None:
    plays = [dict(play, hosts=",".join(hosts)) for play in fleet_test.PREPARE]
    path = os.path.join(run.workdir, "prepare.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(plays, handle)
    run.playbook(path, hosts, {})


def ping(run: Run, hosts: list[str]) -> tuple[float, float]:
    """One ansible.builtin.ping per host: what reaching the hosts costs, without site.yml."""
    path = os.path.join(run.workdir, "ping.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(
            [
                {
                    "name": "Ping",
                    "hosts": ",".join(hosts),
                    "gather_facts": False,
                    "tasks": [{"ansible.builtin.ping": None}],
                }
            ],
            handle,
        )
    wall, cpu, _changed = run.playbook(path, hosts, {})
    return wall, cpu


def line(label: str, hosts: int, count: int, wall: float, cpu: float) -> str:
    per_host, per_container = wall / hosts, wall / (hosts * count)
    return f"{label:<26} {hosts:>5} {count:>10} {wall:>8.1f} {per_host:>8.2f} {per_container:>9.3f} {cpu:>8.1f}"


VARIANTS = [
    ("re-converge, no pipelining", {"ANSIBLE_PIPELINING": "False"}, {}),
    ("re-converge, strategy free", {"ANSIBLE_STRATEGY": "free"}, {}),
    ("re-converge, forks 2", {"ANSIBLE_FORKS": "2"}, {}),
    ("re-converge, forks 1", {"ANSIBLE_FORKS": "1"}, {}),
]


def point(run: Run, hosts: list[str], count: int, with_variants: bool, figures: dict) -> None:
    """Converge and re-converge (and its variants) count new containers on each of hosts. Each
    point has containers of its own (the earlier points' keep running, as on a real fleet, and
    nothing is removed between points: removing costs what a re-converge does)."""
    size, prefix = len(hosts), f"scale{len(hosts)}x{count}"
    wall, cpu, changed = run.site(hosts, count, "started", prefix=prefix)
    assert all(changed[host] > 0 for host in hosts), changed
    print(line("converge", size, count, wall, cpu), flush=True)
    figures["converge", size, count] = wall
    for label, env, extra in [("re-converge", {}, {})] + (VARIANTS if with_variants else []):
        wall, cpu, changed = run.site(hosts, count, "started", env, prefix=prefix, **extra)
        assert changed == dict.fromkeys(hosts, 0), changed
        print(line(label, size, count, wall, cpu), flush=True)
        figures.setdefault(("re-converge", size, count), wall)


def remove(run: Run, names: list[str], sizes: list[int], counts: list[int]) -> None:
    """Every point's containers, and the image."""
    for count in counts:
        for size in sizes:
            run.site(names[:size], count, "absent", prefix=f"scale{size}x{count}")
    run.site(names, 0, "absent", image="absent")


def marginal(figures: dict, sizes: list[int], counts: list[int]) -> None:
    """What one more container per host, and one more host, adds to the wall time."""
    print("marginal cost (wall seconds):")
    for kind in ("converge", "re-converge"):
        if len(counts) > 1:
            low, high = min(counts), max(counts)
            for size in sizes:
                extra = (figures[kind, size, high] - figures[kind, size, low]) / (high - low)
                print(f"  {kind:<12} one more container on each of {size} host(s): {extra:6.2f} s", flush=True)
        if len(sizes) > 1:
            low, high = min(sizes), max(sizes)
            for count in counts:
                extra = (figures[kind, high, count] - figures[kind, low, count]) / (high - low)
                print(f"  {kind:<12} one more host with {count} containers: {extra:6.2f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,3,6", help="numbers of hosts (sys1..sysN)")
    parser.add_argument("--containers", default="10,50", help="numbers of containers per host")
    parser.add_argument("--forks", type=int, default=6, help="Ansible forks (default: one per host at 6)")
    parser.add_argument("--no-variants", action="store_true", help="skip the re-converges with one setting changed")
    args = parser.parse_args()
    sizes = [int(n) for n in args.hosts.split(",")]
    counts = [int(n) for n in args.containers.split(",")]
    names = [f"sys{number}" for number in range(1, max(sizes) + 1)]

    given = os.environ.get("VOLT_FLEET_DIR")
    fleet = given if given and os.path.exists(os.path.join(given, "inventory.yml")) else "/var/tmp/volt-fleet-scale"
    script = os.path.join(TOP, "tests", "fleet", "fleet")
    booted = fleet != given
    if booted:
        subprocess.run([script, "create", "--dir", fleet, "--hosts", ",".join(names)], check=True)
    run = Run(fleet, tempfile.mkdtemp(prefix="volt-bench-scale-"), args.forks)
    print(f"fleet: {', '.join(names)} (systemd hosts); forks {args.forks}; pipelining on (ansible.cfg)", flush=True)
    print(f"{'run':<26} {'hosts':>5} {'containers':>10} {'wall s':>8} {'s/host':>8} {'s/contnr':>9} {'cpu s':>8}")
    figures: dict[tuple[str, int, int], float] = {}
    try:
        prepare(run, names)
        # The bridge, unit template and proot-free parts of site.yml once, so that "converge"
        # measures the containers, as on a fleet that gets new containers.
        run.site(names, 0, "started")
        for size in sizes:
            wall, cpu = ping(run, names[:size])
            print(line("ping only", size, 1, wall, cpu), flush=True)
        for count in counts:
            for size in sizes:
                with_variants = not args.no_variants and (count, size) == (min(counts), max(sizes))
                point(run, names[:size], count, with_variants, figures)
        marginal(figures, sizes, counts)
    finally:
        try:
            remove(run, names, sizes, counts)
        finally:
            if booted:
                subprocess.run([script, "destroy", "--dir", fleet], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
