"""Benchmark: re-converging the fleet with site.yml when nothing changes, against the same
playbook with each container and image task replaced by ansible.builtin.ping.

Uses the test fleet (tests/fleet/fleet; VOLT_FLEET_DIR if it is running, else it boots one and
destroys it afterwards): sys1 (systemd), plain1 (no systemd) and termux1 (simulated Termux), 10
containers each. Converges once, then times alternating rounds of
  A) playbooks/site.yml (nothing to change),
  B) the same plays, with the containers role's three tasks (images, containers, images to remove)
     replaced by ansible.builtin.ping loops over the same lists,
and prints the medians and A/B. Target: A/B <= 1.2. Timings are printed, never asserted.

Usage: .venv/bin/python bench/fleet_converge.py [--rounds 3]   (as root, after scripts/bootstrap)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)

from tests.integration.fleet import test_site_fleet as fleet_test  # noqa: E402  (one definition of the workload)

SITE = os.path.join(TOP, "playbooks", "site.yml")


def ping_playbook(workdir: str) -> str:
    """site.yml with the containers role swapped for ping loops over the same items."""
    with open(SITE) as handle:
        plays = yaml.safe_load(handle)
    last = plays[-1]
    assert last["roles"] == [{"role": "armoredgate.volt.containers"}], "site.yml changed: update the bench"
    del last["roles"]
    pings = [
        {"name": "Ping per image", "ansible.builtin.ping": None, "loop": "{{ volt_images | default([]) }}"},
        {"name": "Ping per container", "ansible.builtin.ping": None, "loop": "{{ volt_containers | default([]) }}"},
        {"name": "Ping per image to remove", "ansible.builtin.ping": None, "loop": "{{ volt_images | default([]) }}"},
    ]
    last["tasks"] = pings + last["tasks"]
    path = os.path.join(TOP, "playbooks", ".bench-site-ping.yml")  # next to site.yml: same relative paths
    with open(path, "w") as handle:
        yaml.safe_dump(plays, handle, sort_keys=False)
    return path


def timed(argv: list[str]) -> float:
    begin = time.perf_counter()
    result = fleet_test.ansible(*argv)
    elapsed = time.perf_counter() - begin
    if result.returncode != 0:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-2000:])
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(TOP, "build", "collections"))
    given = os.environ.get("VOLT_FLEET_DIR")
    fleet = given if given and os.path.exists(os.path.join(given, "inventory.yml")) else "/var/tmp/volt-fleet-bench"
    script = os.path.join(TOP, "tests", "fleet", "fleet")
    booted = fleet != given
    if booted:
        subprocess.run([script, "create", "--dir", fleet, "--hosts", ",".join(fleet_test.HOSTS)], check=True)
    workdir = tempfile.mkdtemp(prefix="volt-bench-fleet-")
    ping = ping_playbook(workdir)
    try:
        prepare = os.path.join(workdir, "prepare.yml")
        with open(prepare, "w") as handle:
            yaml.safe_dump(fleet_test.PREPARE, handle)
        timed(["ansible-playbook", "-i", fleet_test.inventory(fleet), prepare])
        converge = fleet_test.site(fleet, pathlib.Path(workdir), "started")
        fleet_test.recap(converge)
        variables = os.path.join(workdir, "vars-started.yml")
        common = ["-i", fleet_test.inventory(fleet), "-e", f"@{variables}"]
        times: dict[str, list[float]] = {"site": [], "ping": []}
        for _round in range(args.rounds):
            times["site"].append(timed(["ansible-playbook", *common, SITE]))
            times["ping"].append(timed(["ansible-playbook", *common, ping]))
        site_s, ping_s = statistics.median(times["site"]), statistics.median(times["ping"])
        hosts, count = len(fleet_test.HOSTS), fleet_test.COUNT
        print(f"fleet: {', '.join(fleet_test.HOSTS)}; {count} containers per host ({hosts * count} in all)")
        print(f"rounds: {args.rounds}; site.yml {sorted(round(t, 2) for t in times['site'])}")
        print(f"                 ping  {sorted(round(t, 2) for t in times['ping'])}")
        print(f"site.yml re-converge (no change) : {site_s:.2f} s")
        print(f"same plays, ping instead         : {ping_s:.2f} s")
        print(f"ratio site/ping                  : {site_s / ping_s:.3f}  (target <= 1.2)")
    finally:
        fleet_test.recap(fleet_test.site(fleet, pathlib.Path(workdir), "absent", images_state="absent"))
        os.unlink(ping)
        if booted:
            subprocess.run([script, "destroy", "--dir", fleet], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
