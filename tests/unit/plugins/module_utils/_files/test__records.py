from __future__ import annotations

import json
import multiprocessing
import os
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = str(tmp_path / "state.json")
    _records.write_json(path, {"a": 1})
    _records.write_json(path, {"a": 2})
    assert json.loads(open(path).read()) == {"a": 2}
    assert os.listdir(tmp_path) == ["state.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "state.json")
    _records.write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        _records.write_json(path, {"a": object()})
    assert _records.read_json(path) == {"a": 1}
    assert os.listdir(tmp_path) == ["state.json"]


def test_config_reads_json_and_volt_cli_yaml(tmp_path):
    path = str(tmp_path / "config.yaml")
    _records.write_config(path, {"name": "web", "options": {"env": {"A": "1"}}})
    assert _records.read_config(path)["options"] == {"env": {"A": "1"}}
    with open(path, "w") as handle:
        handle.write("name: web\nrootfs: /var/lib/volt/containers/web/rootfs\nenv:\n  - A=1\n")
    assert _records.read_config(path)["env"] == ["A=1"]


@pytest.mark.parametrize("content", ["{not json", "- a list\n", "\x00\xff"])
def test_corrupt_records_are_reported(tmp_path, content):
    path = str(tmp_path / "state.json")
    with open(path, "w", encoding="latin-1") as handle:
        handle.write(content)
    with pytest.raises(CorruptRecord) as info:
        _records.read_config(path)
    assert path in info.value.msg


def _hold_lock(locks_dir, seconds, started):
    with _records.Lock(locks_dir, "web"):
        started.set()
        time.sleep(seconds)


def test_lock_excludes_another_process(tmp_path):
    started = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(str(tmp_path / "locks"), 0.5, started))
    holder.start()
    assert started.wait(10)
    begin = time.monotonic()
    with _records.Lock(str(tmp_path / "locks"), "web"):
        waited = time.monotonic() - begin
    holder.join()
    assert waited > 0.2


def test_records_are_private(tmp_path):
    """Records may hold environment values: 0600 whatever the umask."""
    old = os.umask(0)
    try:
        path = str(tmp_path / "config.yaml")
        _records.write_config(path, {"options": {"env": {"TOKEN": "x"}}})
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_private_dir_creates_and_tightens(tmp_path):
    fresh = tmp_path / "a" / "data"
    assert _records.private_dir(str(fresh)) == str(fresh)
    assert os.stat(fresh).st_mode & 0o777 == 0o700
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o755)
    _records.private_dir(str(loose))
    assert os.stat(loose).st_mode & 0o777 == 0o700
