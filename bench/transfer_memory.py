"""Benchmark: peak memory of a large file copied into a container on a fleet host over SSH
(ansible.builtin.copy) and fetched back (ansible.builtin.fetch) through armoredgate.volt.volt.

Uses the test fleet (tests/fleet/fleet; VOLT_FLEET_DIR if it is running, else it boots plain1
and sys1 and destroys them afterwards): a container on plain1 (proot) and one on sys1
(systemd-nspawn). Prints, for each transfer, the peak RSS (high-water mark) of
  - the controller: the largest process of the ansible tree (ansible, its worker, ssh, sftp),
    next to that of a one-byte copy (what ansible takes whatever the file),
  - volt-enter on the host (exact: the host's python runs it through a wrapper that reads
    getrusage), and every other process of the host (sampled VmHWM, by name: sshd,
    sftp-server, the module's python3),
and the time taken. Nothing is asserted (tests/integration/connection/test_streaming.py
asserts the memory bounds).

Usage: .venv/bin/python bench/transfer_memory.py [--size-mb 200] [--topologies plain1-proot,sys1-systemd]
       (as root, after scripts/bootstrap)
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, TOP)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(TOP, "build", "collections"))

from tests.integration.connection import test_streaming as streaming  # noqa: E402  (one definition of the workload)


def mib(kib: int) -> str:
    return f"{kib / 1024:7.1f}"


def report(ident: str, size: int, floor: int, figures: dict) -> None:
    print(f"\n{ident}: {size / streaming.MIB:.0f} MiB, peak RSS in MiB (one-byte copy: controller {mib(floor)})")
    names = sorted({name for step in figures.values() for name in step["host"]})
    print(f"{'':6} {'time s':>7} {'ctrl':>7} {'volt-enter':>10} " + " ".join(f"{name[:11]:>11}" for name in names))
    for step, step_figures in figures.items():
        enter = step_figures["volt-enter"].get(step, 0)
        host = " ".join(f"{mib(step_figures['host'].get(name, 0)):>11}" for name in names)
        print(f"{step:6} {step_figures['seconds']:7.1f} {mib(step_figures['controller'])} {mib(enter):>10} {host}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--topologies", default=",".join(streaming.STREAM_TOPOLOGIES))
    args = parser.parse_args()
    given = os.environ.get("VOLT_FLEET_DIR")
    fleet = given if given and os.path.exists(os.path.join(given, "inventory.yml")) else "/var/tmp/volt-fleet-bench"
    script = os.path.join(TOP, "tests", "fleet", "fleet")
    booted = fleet != given
    if booted:
        subprocess.run([script, "create", "--dir", fleet, "--hosts", "plain1,sys1"], check=True)
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="volt-bench-transfer-", dir="/var/tmp"))
    try:
        for ident in args.topologies.split(","):
            topology = streaming.StreamTopology(ident, fleet, workdir)
            topology.prepare()
            try:
                floor = streaming.controller_floor(topology, workdir)
                size = args.size_mb * streaming.MIB
                figures = streaming.round_trip(topology, str(workdir / "big.bin"), size, str(workdir / "fetched.bin"))
                report(ident, size, floor, figures)
            finally:
                topology.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if booted:
            subprocess.run([script, "destroy", "--dir", fleet], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
