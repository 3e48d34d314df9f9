# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The systemd backend's own files: private modes, nothing written for a refused value, and other
tools' .nspawn files neither breaking the listing nor being removed."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files, _systemd
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord, ForeignRecord, VoltError


class QuietRunner:
    """systemctl and machinectl as on a host where no unit ever ran."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv, check=True, **_kwargs):
        self.commands.append(list(argv))
        return 0, "", ""

    def which(self, program, extra_dirs=None):
        return None


@pytest.fixture
def backend(systemd_dirs):
    return _systemd.SystemdBackend(QuietRunner(), systemd_dirs, {})


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_settings_and_dropin_are_private(backend):
    config = {"command": ["/bin/true"], "env": {"TOKEN": "s3cret"}}
    backend._write_settings("web", config, {})
    assert mode(backend._settings("web")) == 0o600
    assert mode(backend._dropin("web")) == 0o600


def test_an_older_world_readable_file_is_made_private_without_a_rewrite(backend):
    config = {"command": ["/bin/true"]}
    backend._write_settings("web", config, {})
    os.chmod(backend._settings("web"), 0o644)
    os.chmod(backend._dropin("web"), 0o644)
    before = os.stat(backend._settings("web")).st_ino
    assert (
        backend._write_settings("web", config, _nspawn_files.parse_record(open(backend._settings("web")).read()))
        is False
    )
    assert mode(backend._settings("web")) == 0o600 and mode(backend._dropin("web")) == 0o600
    assert os.stat(backend._settings("web")).st_ino == before


def test_a_refused_value_writes_neither_file(backend):
    with pytest.raises(VoltError, match="env A"):
        backend._write_settings("web", {"command": ["/bin/true"], "env": {"A": "x\n[Files]\nBind=/:/host"}}, {})
    assert not os.path.exists(backend._settings("web")) and not os.path.exists(backend._dropin("web"))


def test_a_refused_value_leaves_the_old_files_alone(backend):
    backend._write_settings("web", {"command": ["/bin/true"]}, {})
    before = open(backend._settings("web")).read(), open(backend._dropin("web")).read()
    with pytest.raises(VoltError, match="workdir"):
        backend._write_settings("web", {"command": ["/bin/true"], "workdir": "/srv\nCapability=all"}, {})
    assert (open(backend._settings("web")).read(), open(backend._dropin("web")).read()) == before


def test_check_config_refuses_before_anything_is_cloned(backend, tmp_path):
    source = tmp_path / "image"
    os.makedirs(source / "usr")
    config = {"rootfs": str(source), "command": ["/bin/true"], "env": {"EVIL": "x\nCapability=all"}}
    with pytest.raises(VoltError, match="env EVIL"):
        backend.check_config("web", config, ["create"])
    assert not os.path.exists(backend.data_dir)


FOREIGN = {
    "plain.nspawn": "[Exec]\nBoot=yes\n",
    "not utf8.nspawn": "[Exec]\nBoot=yes\n",
    "binary.nspawn": b"\xff\xfe[Exec]\n",
    "other@machine.nspawn": "# volt-record: {}\n",
}
DAMAGED = {
    "badjson.nspawn": "# volt-record: {broken\n[Exec]\n",
    "alist.nspawn": "# volt-record: [1, 2]\n[Exec]\n",
    "oddconfig.nspawn": '# volt-record: {"name":"oddconfig","config":[1]}\n[Exec]\n',
}


def test_foreign_and_damaged_files_do_not_hide_the_other_containers(backend):
    backend._write_settings("good", {"command": ["/bin/true"]}, {})
    for name, content in {**FOREIGN, **DAMAGED}.items():
        path = os.path.join(_systemd.NSPAWN_DIR, name)
        with open(path, "wb") as handle:
            handle.write(content if isinstance(content, bytes) else content.encode())
    os.mkdir(os.path.join(_systemd.NSPAWN_DIR, "adir.nspawn"))
    listed = {record.name: record for record in backend.list()}
    assert sorted(listed) == ["adir", "alist", "badjson", "good", "oddconfig"]
    assert listed["good"].status == "created"
    for name in ("adir", "alist", "badjson", "oddconfig"):
        assert listed[name].status == "corrupt" and listed[name].config["error"], name


def test_a_foreign_file_is_refused_without_being_corrupt_and_never_removed(backend):
    path = os.path.join(_systemd.NSPAWN_DIR, "theirs.nspawn")
    with open(path, "w") as handle:
        handle.write("[Exec]\nBoot=yes\n")
    with pytest.raises(VoltError, match="not written by Volt") as caught:
        backend.inspect("theirs")
    assert isinstance(caught.value, ForeignRecord)
    assert not isinstance(caught.value, CorruptRecord), "force: true would then remove it"
    backend.remove("theirs", 1)
    assert os.path.exists(path)
