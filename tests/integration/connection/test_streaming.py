"""File transfers of the armoredgate.volt.volt connection to containers on fleet hosts over SSH
stream in bounded chunks: a 200 MB ansible.builtin.copy and ansible.builtin.fetch round-trip
byte for byte, with the host-side processes' peak memory (and the controller's, above what a
one-byte copy takes) bounded; odd sizes (empty, the inline limit and one more byte, not a
multiple of the chunk) through the plugin itself, with owner, mode and no staging file left
on the host, also when a transfer fails (and a day-old one is removed). On plain1 (proot) and
sys1 (systemd-nspawn).

bench/transfer_memory.py prints the same figures."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from ansible.errors import AnsibleError
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

from ..conftest import TOP
from .test_become import BecomeTopology

MIB = 1024 * 1024
BIG = 200 * MIB
# Bound on each host-side process (volt-enter, sshd, sftp-server) and on the controller's growth.
BOUND_KIB = 64 * 1024
STREAM_TOPOLOGIES = ["plain1-proot", "sys1-systemd"]
# Where the host's python runs volt-enter through: records each put's and fetch's peak RSS.
RSS_PYTHON = "/usr/local/bin/volt-rss-python"
RSS_PYTHON_CODE = """\
#!/usr/bin/python3
# python3 with these arguments; appends "ACTION PEAK_RSS_KIB" to {log} for volt-enter's actions.
import resource, subprocess, sys
code = subprocess.call(["/usr/bin/python3", *sys.argv[1:]])
if "--" in sys.argv:
    action = sys.argv[sys.argv.index("--") - 1]
    with open("{log}", "a") as log:
        log.write("%s %d\\n" % (action, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
raise SystemExit(code)
"""
# Where the SSH user's staging files would be left (the fleet's hosts are reached as root).
TRANSFERS = "/root/.ansible/volt/transfers"


class StreamTopology(BecomeTopology):
    """A container with unprivileged users (volt-user is 1000), and what its host's processes
    take in memory."""

    container = "stream"

    def __init__(self, ident, fleet, tmp_path):
        super().__init__(ident, fleet, tmp_path)
        self.rss_log = f"/var/tmp/volt-rss-{os.getpid()}-{ident}.log"

    def prepare(self):
        super().prepare()
        path = self.host_path(RSS_PYTHON)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(RSS_PYTHON_CODE.format(log=self.rss_log))
        os.chmod(path, 0o755)

    def inventory(self, **host_vars) -> str:
        return super().inventory(ansible_volt_host_python=RSS_PYTHON, **host_vars)

    def host_peaks(self) -> dict[str, int]:
        """Peak RSS (KiB) of volt-enter per action since the last call."""
        peaks: dict[str, int] = {}
        with contextlib.suppress(FileNotFoundError):
            with open(self.host_path(self.rss_log), encoding="utf-8") as handle:
                for line in handle:
                    action, kib = line.split()
                    peaks[action] = max(peaks.get(action, 0), int(kib))
            os.unlink(self.host_path(self.rss_log))
        return peaks

    def staged(self) -> list[str]:
        path = self.host_path(TRANSFERS)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []


class HostSampler:
    """The highest VmHWM (KiB) of every process of a fleet host (its root is the host's), by
    command name, sampled while running. Sampling misses nothing that lives a few samples long."""

    def __init__(self, host_root: str, interval: float = 0.05) -> None:
        root = os.stat(host_root)
        self._root = (root.st_dev, root.st_ino)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peaks: dict[str, int] = {}

    def _sample(self) -> None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                root = os.stat(f"/proc/{pid}/root/")
                if (root.st_dev, root.st_ino) != self._root:
                    continue
                with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
                    fields = dict(line.split(":", 1) for line in handle if ":" in line)
            except OSError:
                continue
            if "VmHWM" in fields:
                name = fields["Name"].strip()
                self.peaks[name] = max(self.peaks.get(name, 0), int(fields["VmHWM"].split()[0]))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> HostSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measured(argv: list[str], env: dict | None = None) -> tuple[int, str, int]:
    """(exit code, output, peak RSS in KiB of the largest process of the tree) of argv."""
    program = os.path.join(os.path.dirname(sys.executable), argv[0])
    full_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), **(env or {}))
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen([program, *argv[1:]], stdout=output, stderr=subprocess.STDOUT, env=full_env)
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        return process.returncode, output.read().decode(errors="replace"), usage.ru_maxrss


def random_file(path: str, size: int) -> str:
    """Write size random bytes to path (in chunks); their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        left = size
        while left:
            chunk = os.urandom(min(MIB, left))
            digest.update(chunk)
            handle.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def ad_hoc(topology, module: str, args: str) -> tuple[int, str, int]:
    return measured(["ansible", "-i", topology.inventory(), "all", "-m", module, "-a", args])


def round_trip(topology, local: str, size: int, fetched: str) -> dict:
    """Copy local (size random bytes) to the container and fetch it back, with what each side
    took in memory: {put, fetch} -> {controller, volt-enter, host (sampled, by name)}."""
    figures = {}
    remote = "/root/volt-stream.bin"
    digest = random_file(local, size)
    host_root = os.path.join(topology.fleet, "hosts", topology.host, "root")
    topology.host_peaks()
    for step, module, args in (
        ("put", "ansible.builtin.copy", f"src={local} dest={remote} mode=0640"),
        ("fetch", "ansible.builtin.fetch", f"src={remote} dest={fetched} flat=yes"),
    ):
        started = time.monotonic()
        with HostSampler(host_root) as sampler:
            rc, output, controller = ad_hoc(topology, module, args)
        assert rc == 0, output[-4000:]
        figures[step] = {
            "seconds": time.monotonic() - started,
            "controller": controller,
            "volt-enter": topology.host_peaks(),
            "host": sampler.peaks,
        }
    assert sha256(topology.rootfs_path(remote)) == digest
    assert sha256(fetched) == digest
    os.unlink(topology.rootfs_path(remote))
    return figures


def controller_floor(topology, tmp_path) -> int:
    """Peak RSS (KiB) of a one-byte copy: what ansible takes whatever the file."""
    small = tmp_path / "one-byte"
    small.write_bytes(b"x")
    rc, output, controller = ad_hoc(topology, "ansible.builtin.copy", f"src={small} dest=/root/volt-one-byte")
    assert rc == 0, output[-4000:]
    return controller


@pytest.fixture(params=STREAM_TOPOLOGIES)
def topology(request, fleet, tmp_path):
    chosen = StreamTopology(request.param, fleet, tmp_path)
    chosen.prepare()
    yield chosen
    chosen.cleanup()


def test_200_mb_put_and_fetch_stream_in_bounded_memory(topology, tmp_path):
    floor = controller_floor(topology, tmp_path)
    figures = round_trip(topology, str(tmp_path / "big.bin"), BIG, str(tmp_path / "fetched.bin"))
    print(f"{topology.ident}: one-byte copy {floor} KiB; {figures}")
    for step in ("put", "fetch"):
        step_figures = figures[step]
        assert 0 < step_figures["volt-enter"].get(step, 0) < BOUND_KIB, step_figures
        for name in ("sshd", "sftp-server"):
            assert step_figures["host"].get(name, 0) < BOUND_KIB, step_figures
        assert step_figures["controller"] - floor < BOUND_KIB, (floor, step_figures)
    assert topology.staged() == []


# -- odd sizes, owners and failures through the plugin itself ----------------------------------


@pytest.fixture
def connection(topology):
    """The plugin, connected to the topology's container as volt-user."""
    play_context = PlayContext()
    plugin = connection_loader.get("armoredgate.volt.volt", play_context)
    variables = {
        "inventory_hostname": "stream",
        "ansible_host": topology.container,
        "ansible_user": "volt-user",
        "ansible_volt_backend": topology.backend,
        "ansible_volt_data_dir": topology.data_dir,
        "ansible_volt_container_host": topology.host,
        "ansible_ssh_common_args": f"-F {topology.fleet}/ssh_config",
        "ansible_control_path_dir": f"{topology.fleet}/cp",
    }
    plugin.set_options(var_options=variables)
    plugin._connect()
    yield plugin
    plugin.close()


@pytest.mark.parametrize("size", [0, 1, MIB, MIB + 1, 3 * MIB + 7], ids=lambda size: f"{size}-bytes")
def test_odd_sizes_round_trip_owned_by_remote_user(topology, connection, size, tmp_path):
    local = str(tmp_path / "sent")
    digest = random_file(local, size)
    connection.put_file(local, "/home/volt-user/sent")
    placed = topology.rootfs_path("/home/volt-user/sent")
    status = os.stat(placed)
    assert (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (1000, 1000, 0o644)
    assert status.st_size == size and sha256(placed) == digest
    connection.fetch_file("/home/volt-user/sent", str(tmp_path / "fetched"))
    assert sha256(str(tmp_path / "fetched")) == digest
    # Replacing keeps the file's mode and owner.
    os.chmod(placed, 0o600)
    connection.put_file(local, "/home/volt-user/sent")
    status = os.stat(placed)
    assert (status.st_uid, stat.S_IMODE(status.st_mode)) == (1000, 0o600) and sha256(placed) == digest
    leftovers = [name for name in os.listdir(os.path.dirname(placed)) if name.startswith(".volt-put-")]
    assert leftovers == [] and topology.staged() == []


def test_failed_transfers_leave_nothing_staged(topology, connection, tmp_path):
    local = str(tmp_path / "sent")
    random_file(local, 2 * MIB)
    with pytest.raises(AnsibleError, match="does not exist in the container"):
        connection.put_file(local, "/no/such/dir/file")
    with pytest.raises(AnsibleError, match="does not exist in the container"):
        connection.fetch_file("/no/such/file", str(tmp_path / "fetched"))
    with pytest.raises(AnsibleError, match="is a directory"):
        connection.fetch_file("/home", str(tmp_path / "fetched"))
    assert topology.staged() == []


def test_day_old_staging_directories_are_removed(topology, connection, tmp_path):
    """A controller that died mid-transfer left its staging directory: the next one removes it
    once a day old, and leaves a recent one alone."""
    local = str(tmp_path / "sent")
    random_file(local, 2 * MIB)
    old = time.time() - 2 * 24 * 3600
    for name, mtime in (("volt-stale0", old), ("volt-recent0", time.time() - 3600)):
        directory = topology.host_path(f"{TRANSFERS}/{name}")
        os.makedirs(directory, mode=0o700)
        with open(os.path.join(directory, "data"), "wb") as handle:
            handle.write(b"left behind")
        for path in (os.path.join(directory, "data"), directory):
            os.utime(path, (mtime, mtime))
    try:
        connection.put_file(local, "/home/volt-user/sent")
        assert topology.staged() == ["volt-recent0"]
    finally:
        subprocess.run(["rm", "-rf", topology.host_path(f"{TRANSFERS}/volt-stale0")], check=True)
        subprocess.run(["rm", "-rf", topology.host_path(f"{TRANSFERS}/volt-recent0")], check=True)
