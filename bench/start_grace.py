"""Benchmark: what start_grace_period costs a converge that starts 30 containers.

Creates and starts N proot containers (busybox, sleep) in a scratch data dir with one
volt_container loop, then removes them, alternating start_grace_period 1.0 (the default), 0.2
and 0 (the watch turned off); prints the median time of each converge and the cost per started
container against 0. Timings are printed, never asserted: the machine is shared and noisy.

Usage: .venv/bin/python bench/start_grace.py [--items 30] [--rounds 3] [--proot PATH]
(after scripts/bootstrap; PATH defaults to the proot 5.4 the test set-up builds, else proot on PATH)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The same scratch image, play template and runner as the no-op benchmark.
from noop_loop import PLAY, run, scratch

START_TASK = """    - name: Start the containers
      armoredgate.volt.volt_container:
        name: "grace{{{{ item }}}}"
        image: busybox
        command: [sleep, "100000"]
        data_dir: {data_dir}
        backend: proot
        proot_path: {proot}
        start_grace_period: {grace}
      loop: "{{{{ range({items}) | list }}}}"
"""
REMOVE_TASK = """    - name: Remove the containers
      armoredgate.volt.volt_container:
        name: "grace{{{{ item }}}}"
        state: absent
        data_dir: {data_dir}
        backend: proot
        proot_path: {proot}
      loop: "{{{{ range({items}) | list }}}}"
"""
GRACES = (1.0, 0.2, 0.0)


def default_proot() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    built = os.environ.get("VOLT_PROOT_54") or os.path.join(cache, "armoredgate-volt", "proot-5.4", "bin", "proot")
    return built if os.access(built, os.X_OK) else (shutil.which("proot") or "proot")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--proot", default=default_proot())
    args = parser.parse_args()

    workdir, data_dir, env = scratch("volt-bench-grace-")
    fields = {"items": args.items, "data_dir": data_dir, "proot": args.proot}
    plays = {}
    for grace in GRACES:
        plays[grace] = os.path.join(workdir, f"start-{grace}.yml")
        with open(plays[grace], "w") as handle:
            handle.write(PLAY.format(task=START_TASK.format(grace=grace, **fields)))
    remove = os.path.join(workdir, "remove.yml")
    with open(remove, "w") as handle:
        handle.write(PLAY.format(task=REMOVE_TASK.format(**fields)))
    try:
        times: dict[float, list[float]] = {grace: [] for grace in GRACES}
        for _round in range(args.rounds):
            for grace in GRACES:
                times[grace].append(run(plays[grace], env))
                run(remove, env)
        medians = {grace: statistics.median(values) for grace, values in times.items()}
        print(f"containers started per converge: {args.items} (rounds: {args.rounds}, medians; proot {args.proot})")
        for grace in GRACES:
            extra = (medians[grace] - medians[0.0]) / args.items
            print(
                f"start_grace_period {grace:>3}: {medians[grace]:6.2f} s  "
                f"ratio to 0: {medians[grace] / medians[0.0]:.2f}  per container: +{extra:.2f} s"
            )
    finally:
        run(remove, env)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
