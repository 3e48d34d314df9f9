"""_enter under attack: a process in the container swaps a directory for a symlink to the host
while put and fetch run. Nothing may be written to or read from the host."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._entry import _host_entry
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

HOST_SECRET = b"host secret, never to be fetched"
SECONDS = 3

# Renames tmp/d away, puts a symlink to the host in its place, then puts the directory back,
# alternating an absolute link and a relative one that climbs out of the root.
FLIPPER = """
import os, sys, time
guest_tmp, host, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
d, real = os.path.join(guest_tmp, "d"), os.path.join(guest_tmp, "d.real")
targets = [host, os.path.join("..", "..", os.path.basename(host))]
end = time.monotonic() + seconds
i = 0
while time.monotonic() < end:
    try:
        os.rename(d, real)
        os.symlink(targets[i % 2], d)
        os.unlink(d)
        os.rename(real, d)
    except OSError:
        pass
    i += 1
"""


@pytest.fixture
def attacked(tmp_path):
    """(rootfs, host dir, flipper process): the guest's /tmp/d keeps turning into a host symlink."""
    root = tmp_path / "rootfs"
    (root / "tmp" / "d").mkdir(parents=True)
    (root / "tmp" / "d" / "secret").write_bytes(b"guest")
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_bytes(HOST_SECRET)
    assert os.path.samefile(root / "tmp" / ".." / ".." / "host", host)  # the relative link does escape
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(root / "tmp"), str(host), str(SECONDS)])
    time.sleep(0.2)  # let it get going
    yield root, host, flipper
    flipper.kill()
    flipper.wait()
    leftovers = [name for top in (root, host) for name in walk_names(top) if name.startswith(".volt-put-")]
    assert leftovers == [], "a temporary file was left behind"


def walk_names(top):
    for _directory, dirnames, filenames in os.walk(top):  # never follows symlinks
        yield from dirnames
        yield from filenames


def race(flipper, attempt) -> tuple[int, int]:
    """Run attempt until the flipper ends: (successes, failures)."""
    done = failed = 0
    while flipper.poll() is None:
        try:
            attempt()
            done += 1
        except (VoltError, OSError):
            failed += 1
    assert done + failed > 100, "the race ran too few times to mean anything"
    return done, failed


def test_put_through_a_swapped_directory_never_writes_on_the_host(attacked):
    root, host, flipper = attacked
    done, failed = race(flipper, lambda: _host_entry.write_guest_file(str(root), "/tmp/d/x", io.BytesIO(b"payload")))
    assert sorted(os.listdir(host)) == ["secret"], "something was written into the host directory"
    assert (host / "secret").read_bytes() == HOST_SECRET
    assert done and failed  # both outcomes happened: the race was real
    assert (root / "tmp" / "d" / "x").read_bytes() == b"payload"


def test_fetch_through_a_swapped_directory_never_reads_the_host(attacked):
    root, _host, flipper = attacked
    fetched = []

    def fetch():
        sink = io.BytesIO()
        fetched.append(sink)
        _host_entry.read_guest_file(str(root), "/tmp/d/secret", sink)

    done, failed = race(flipper, fetch)
    assert not [sink for sink in fetched if HOST_SECRET in sink.getvalue()], "a host file was fetched"
    assert done and failed
    assert {sink.getvalue() for sink in fetched} <= {b"guest", b""}


# Swaps the regular file tmp/f for a FIFO and back: opening a FIFO to read waits for a writer.
FIFO_FLIPPER = """
import os, sys, time
guest_tmp, seconds = sys.argv[1], float(sys.argv[2])
f, regular, fifo = (os.path.join(guest_tmp, name) for name in ("f", "f.regular", "f.fifo"))
end = time.monotonic() + seconds
while time.monotonic() < end:
    os.rename(f, regular)
    os.rename(fifo, f)
    os.rename(f, fifo)
    os.rename(regular, f)
"""


def test_fetch_of_a_file_swapped_for_a_fifo_never_blocks(tmp_path):

    root = tmp_path / "rootfs"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp" / "f").write_bytes(b"guest")
    os.mkfifo(root / "tmp" / "f.fifo")
    flipper = subprocess.Popen([sys.executable, "-c", FIFO_FLIPPER, str(root / "tmp"), str(SECONDS)])
    counts = []

    def fetch():
        counts.append(race(flipper, lambda: _host_entry.read_guest_file(str(root), "/tmp/f", io.BytesIO())))

    try:
        time.sleep(0.2)
        worker = threading.Thread(target=fetch, daemon=True)  # a blocked open would never return
        worker.start()
        worker.join(SECONDS + 10)
        assert not worker.is_alive(), "fetch blocked on a FIFO"
    finally:
        flipper.kill()
        flipper.wait()
    assert counts and all(counts[0])
