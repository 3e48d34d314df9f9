"""Benchmark: cold and warm OCI pull + unpack, volt_image against proot-distro install.

Both pull the same image from the same registry on 127.0.0.1 (tests/setup/registry/registry,
plain HTTP): a debootstrapped Debian bookworm split into three gzip layers (usr/; etc/ and var/;
the rest). Prints, from one run of interleaved rounds (medians; VOLT_BENCH_ROUNDS, default 5):
  cold volt_image / cold proot-distro install       (target <= 1.0)
  warm volt_image re-run (image up to date) / cold  (target <= 0.2)
  warm volt_image re-unpack from cached layers (force) / cold
  warm proot-distro install (layers cached) / its cold install, for comparison.
Timings are printed, never asserted. Needs root (debootstrap, when the base tree is missing),
scripts/bootstrap, and proot-distro 5.10.3 from PyPI, which it installs into build/bench-venv.

Usage: .venv/bin/python bench/image_pull.py
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(TOP, ".venv", "bin")
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
BASE_STORE = os.path.join(CACHE, "armoredgate-volt", "debootstrap-store")
PROOT_DISTRO = "proot-distro==5.10.3"
ROUNDS = int(os.environ.get("VOLT_BENCH_ROUNDS", "5"))


def run(argv, **kwargs):
    return subprocess.run(argv, check=True, **kwargs)


def timed(argv, env=None) -> float:
    begin = time.perf_counter()
    run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - begin


def ansible_env() -> dict:
    return dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(TOP, "build", "collections"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )


def volt_image(**args) -> list[str]:
    text = " ".join(f"{key}={value}" for key, value in args.items())
    return [os.path.join(BIN, "ansible"), "localhost", "-c", "local", "-m", "armoredgate.volt.volt_image", "-a", text]


def base_tree() -> str:
    tree = os.path.join(BASE_STORE, "images", "bookworm")
    if not os.path.isdir(tree):
        run(
            volt_image(name="bookworm", suite="bookworm", data_dir=BASE_STORE),
            env=ansible_env(),
            stdout=subprocess.DEVNULL,
        )
    return tree


def layer(tree: str, members: list[str]) -> tuple[bytes, str]:
    """A gzip layer of these top-level entries; returns (blob, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            archive.add(os.path.join(tree, member), member)
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0), diff_id


def oci_layout(tree: str, layout: str) -> None:
    top = sorted(os.listdir(tree))
    groups = [["usr"], [m for m in top if m in ("etc", "var")], [m for m in top if m not in ("usr", "etc", "var")]]
    blobs = os.path.join(layout, "blobs", "sha256")
    os.makedirs(blobs)

    def put(data: bytes) -> dict:
        digest = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, digest), "wb") as handle:
            handle.write(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    layers, diff_ids = [], []
    for group in groups:
        blob, diff_id = layer(tree, group)
        layers.append(dict(put(blob), mediaType="application/vnd.oci.image.layer.v1.tar+gzip"))
        diff_ids.append(diff_id)
    config = put(
        json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/bash"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            }
        ).encode()
    )
    manifest = put(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
                "layers": layers,
            }
        ).encode()
    )
    with open(os.path.join(layout, "index.json"), "w") as handle:
        json.dump(
            {
                "schemaVersion": 2,
                "manifests": [
                    dict(
                        manifest,
                        mediaType="application/vnd.oci.image.manifest.v1+json",
                        annotations={"org.opencontainers.image.ref.name": "bench"},
                    )
                ],
            },
            handle,
        )
    with open(os.path.join(layout, "oci-layout"), "w") as handle:
        json.dump({"imageLayoutVersion": "1.0.0"}, handle)


def main() -> int:
    work = tempfile.mkdtemp(prefix="volt-bench-pull-")
    registry_script = os.path.join(TOP, "tests", "setup", "registry", "registry")
    env_lines = run([registry_script, "start"], capture_output=True, text=True).stdout
    host = next(
        line.split("=", 1)[1].strip("'\"")
        for line in env_lines.splitlines()
        if line.startswith("export VOLT_REGISTRY_HTTP=")
    )
    reference = f"{host}/bench/debian:bookworm"
    venv = os.path.join(TOP, "build", "bench-venv")
    if not os.path.exists(os.path.join(venv, "bin", "proot-distro")):
        run([sys.executable, "-m", "venv", venv])
        run([os.path.join(venv, "bin", "pip"), "install", "-q", PROOT_DISTRO], stdout=subprocess.DEVNULL)
    try:
        layout = os.path.join(work, "layout")
        oci_layout(base_tree(), layout)
        run(
            ["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:bench", f"docker://{reference}"],
            stdout=subprocess.DEVNULL,
        )
        sizes = [entry["size"] for entry in json.load(open(os.path.join(layout, "index.json")))["manifests"]]
        pd = [os.path.join(venv, "bin", "proot-distro")]
        rounds = []
        for number in range(ROUNDS):
            # Interleaved rounds, each on fresh stores: this machine's disk and CPUs are shared,
            # and a lone pair of timings can swing by 30 %.
            data_dir = os.path.join(work, f"volt-{number}")
            pull = {"name": "debian", "reference": reference, "validate_certs": "false", "data_dir": data_dir}
            volt_cold = timed(volt_image(**pull), ansible_env())
            volt_warm = timed(volt_image(**pull), ansible_env())
            volt_reunpack = timed(volt_image(force="true", **pull), ansible_env())
            pd_env = dict(os.environ, HOME=os.path.join(work, f"pd-home-{number}"))
            pd_cold = timed([*pd, "install", "--allow-insecure", "-n", "bench", reference], pd_env)
            quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
            run([*pd, "remove", "bench"], env=pd_env, input=b"y\n", **quiet)
            pd_warm = timed([*pd, "install", "--allow-insecure", "-n", "bench", reference], pd_env)
            rounds.append((volt_cold, volt_warm, volt_reunpack, pd_cold, pd_warm))
            shutil.rmtree(data_dir, ignore_errors=True)
            shutil.rmtree(pd_env["HOME"], ignore_errors=True)
            print(
                f"round {number + 1}: volt cold {volt_cold:.2f} s, warm {volt_warm:.2f} s, re-unpack "
                f"{volt_reunpack:.2f} s; proot-distro cold {pd_cold:.2f} s, cached {pd_warm:.2f} s; "
                f"cold ratio {volt_cold / pd_cold:.3f}"
            )
        volt_cold, volt_warm, volt_reunpack, pd_cold, pd_warm = (statistics.median(column) for column in zip(*rounds))

        print(f"image: {reference}, 3 gzip layers, manifest {sizes[0]} bytes; medians of {ROUNDS} rounds")
        print(f"volt_image cold pull+unpack          : {volt_cold:6.2f} s")
        print(f"volt_image warm re-run (up to date)  : {volt_warm:6.2f} s")
        print(f"volt_image re-unpack, layers cached  : {volt_reunpack:6.2f} s")
        print(f"proot-distro install cold            : {pd_cold:6.2f} s")
        print(f"proot-distro install, layers cached  : {pd_warm:6.2f} s")
        ratios = sorted(one[0] / one[3] for one in rounds)
        print(f"ratio cold volt_image / proot-distro : {volt_cold / pd_cold:.3f}  (target <= 1.0; per round {ratios})")
        print(f"ratio warm re-run / cold volt_image  : {volt_warm / volt_cold:.3f}  (target <= 0.2)")
        print(f"ratio re-unpack / cold volt_image    : {volt_reunpack / volt_cold:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
