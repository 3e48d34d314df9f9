"""What the systemd backend's unit tests share: its host directories moved under tmp_path."""

from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_network, _systemd


@pytest.fixture
def systemd_dirs(tmp_path, monkeypatch):
    """/etc/systemd/nspawn, the unit directory and the network lock directory, under tmp_path;
    returns the data dir to give the backend."""
    monkeypatch.setattr(_systemd, "NSPAWN_DIR", str(tmp_path / "nspawn"))
    monkeypatch.setattr(_systemd, "UNIT_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(_nspawn_network, "LOCK_DIR", str(tmp_path / "run"))
    (tmp_path / "nspawn").mkdir()
    return str(tmp_path / "volt")
