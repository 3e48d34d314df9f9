"""Benchmark: a 50-item loop of no-op volt_container tasks against the same loop of ping.

Creates 50 running proot containers in a scratch data dir, then times (median of several
alternating runs) ansible-playbook with
  A) loop of 50 armoredgate.volt.volt_container tasks, every container already in state,
  B) loop of 50 ansible.builtin.ping tasks,
  C) a play with no task (fixed start-up cost),
and prints A/B, and (A-C)/(B-C), the ratio per loop item. Target: A/B <= 1.10.
Timings are printed, never asserted: the machine is shared and noisy.

Usage: .venv/bin/python bench/noop_loop.py [--items 50] [--rounds 5]   (after scripts/bootstrap)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PLAY = """---
- name: Bench
  hosts: localhost
  gather_facts: false
  tasks:
{task}
"""
VOLT_TASK = """    - name: Container already in state
      armoredgate.volt.volt_container:
        name: "bench{{{{ item }}}}"
        image: busybox
        command: [sleep, "100000"]
        data_dir: {data_dir}
      loop: "{{{{ range({items}) | list }}}}"
"""
PING_TASK = """    - name: Ping
      ansible.builtin.ping:
      loop: "{{{{ range({items}) | list }}}}"
"""


def make_image(data_dir: str) -> None:
    image = os.path.join(data_dir, "images", "busybox", "bin")
    os.makedirs(image)
    shutil.copy2("/bin/busybox", image)
    for applet in ("sh", "sleep"):
        os.symlink("busybox", os.path.join(image, applet))


def scratch(prefix: str) -> tuple[str, str, dict]:
    """(work dir, data dir with the busybox image, environment running this checkout's collection)."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    data_dir = os.path.join(workdir, "volt")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, "build", "collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    make_image(data_dir)
    return workdir, data_dir, env


def playbook(workdir: str, name: str, body: str) -> str:
    path = os.path.join(workdir, name + ".yml")
    with open(path, "w") as handle:
        handle.write(PLAY.format(task=body))
    return path


def run(path: str, env: dict) -> float:
    begin = time.perf_counter()
    subprocess.run(
        [os.path.join(TOP, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local", path],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    workdir, data_dir, env = scratch("volt-bench-")
    volt = playbook(workdir, "volt", VOLT_TASK.format(items=args.items, data_dir=data_dir))
    ping = playbook(workdir, "ping", PING_TASK.format(items=args.items))
    empty = playbook(workdir, "empty", "    []\n")
    try:
        run(volt, env)  # creates and starts the containers; later runs are no-ops
        times: dict[str, list[float]] = {"volt": [], "ping": [], "empty": []}
        for _round in range(args.rounds):
            for key, path in (("volt", volt), ("ping", ping), ("empty", empty)):
                times[key].append(run(path, env))
        volt_s, ping_s, empty_s = (statistics.median(times[key]) for key in ("volt", "ping", "empty"))
        print(f"items per loop           : {args.items} (rounds: {args.rounds}, medians below)")
        print(f"volt_container loop      : {volt_s:.2f} s")
        print(f"ansible.builtin.ping loop: {ping_s:.2f} s")
        print(f"empty play               : {empty_s:.2f} s")
        print(f"ratio volt/ping (whole play)     : {volt_s / ping_s:.3f}  (target <= 1.10)")
        print(f"ratio per item (start-up removed): {(volt_s - empty_s) / (ping_s - empty_s):.3f}")
    finally:
        remove = PLAY.format(
            task=VOLT_TASK.format(items=args.items, data_dir=data_dir).replace(
                'command: [sleep, "100000"]', "state: absent"
            )
        )
        with open(volt, "w") as handle:
            handle.write(remove)
        run(volt, env)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
