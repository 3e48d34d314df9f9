# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Addresses for application containers on a bridge, the ExecStartPost= line that configures
host0, and the guest's resolv.conf (the real thing is tested on a systemd host in
tests/integration/systemd/test_systemd_network.py)."""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import (
    _nspawn_files,
    _nspawn_network,
    _systemd,
    _systemd_syntax,
)
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

from .test__nspawn_files_injection import TRICKY, read_settings, split_words

BRIDGE = ipaddress.IPv4Interface("10.213.0.1/24")


def test_static_range_is_the_lower_half_without_network_and_bridge_addresses():
    addresses = [str(a) for a in _nspawn_network.static_range(BRIDGE)]
    assert addresses[0] == "10.213.0.2" and addresses[-1] == "10.213.0.127" and len(addresses) == 126
    moved = [str(a) for a in _nspawn_network.static_range(ipaddress.IPv4Interface("10.213.0.5/24"))]
    assert "10.213.0.5" not in moved and moved[:4] == ["10.213.0.1", "10.213.0.2", "10.213.0.3", "10.213.0.4"]


def test_choose_takes_the_lowest_free_address_and_fails_when_none_is_left():
    taken = {ipaddress.IPv4Address("10.213.0.2"), ipaddress.IPv4Address("10.213.0.4")}
    assert _nspawn_network.choose(BRIDGE, taken) == "10.213.0.3/24"
    small = ipaddress.IPv4Interface("192.168.7.1/29")  # .2 and .3 are Volt's, .4-.6 the DHCP pool's
    full = {ipaddress.IPv4Address("192.168.7.2"), ipaddress.IPv4Address("192.168.7.3")}
    with pytest.raises(VoltError, match="no free address left"):
        _nspawn_network.choose(small, full)


@pytest.mark.parametrize(
    ("address", "fits"),
    [
        ("10.213.0.2/24", True),
        ("10.213.0.127/24", True),
        ("10.213.0.128/24", False),  # the DHCP pool's
        ("10.213.0.1/24", False),  # the bridge's
        ("10.213.0.2/16", False),
        ("10.99.0.2/24", False),
        ("", False),
        (None, False),
        ("garbage", False),
    ],
)
def test_a_recorded_address_fits_only_the_bridges_static_range(address, fits):
    assert _nspawn_network.fits(address, BRIDGE) is fits


def test_recorded_addresses_come_from_every_volt_record_but_the_named_one(tmp_path):
    def record(name, **extra):
        text = _nspawn_files.render_nspawn({}, {"name": name, **extra})
        (tmp_path / f"{name}.nspawn").write_text(text)

    record("a", address="10.213.0.2/24")
    record("b", address="10.213.0.3/24")
    record("c")
    (tmp_path / "foreign.nspawn").write_text("[Exec]\nBoot=yes\n")
    (tmp_path / "broken.nspawn").write_text(_nspawn_files.RECORD_PREFIX + "{not json\n")
    assert _nspawn_network.recorded_addresses(str(tmp_path), "b") == {ipaddress.IPv4Address("10.213.0.2")}
    assert _nspawn_network.recorded_addresses(str(tmp_path / "missing"), "b") == set()


@pytest.mark.parametrize("word", [*TRICKY, "$1", "${leader}", "$$", "a;b", ";"])
def test_exec_start_post_comes_back_exactly(word):
    argv = ["/bin/sh", "-c", _nspawn_network.HOST0_SCRIPT, "volt-host0", word]
    line = _systemd_syntax.assignment("unit", "ExecStartPost", argv, "network")
    ((_section, key, value),) = read_settings(line)
    assert key == "ExecStartPost"
    # Specifiers first, then words with C escapes, then '$$' -> '$' when the command runs.
    words = split_words(value.replace("%%", "\0"), c_escapes=True)
    assert "%" not in "".join(words), "a specifier would be expanded"
    ran = [w.replace("\0", "%").replace("$$", "\1").replace("$", "<variable>").replace("\1", "$") for w in words]
    assert ran == argv


@pytest.mark.parametrize("argv", [[], ["sh", "-c", "true"], ["/bin/sh", "a\nExecStartPre=/bin/evil"], "no list"])
def test_exec_start_post_refuses_what_systemd_cannot_run_as_given(argv):
    with pytest.raises(VoltError, match="network"):
        _systemd_syntax.assignment("unit", "ExecStartPost", argv, "network")


def test_the_dropin_runs_the_host0_command_only_when_given():
    assert "ExecStartPost" not in _nspawn_files.render_dropin({}, "/r/web")
    host0 = _nspawn_network.exec_start_post("web", "10.213.0.2/24", "10.213.0.1")
    settings = read_settings(_nspawn_files.render_dropin({}, "/r/web", host0))
    assert [k for _s, k, _v in settings][-1] == "ExecStartPost"


@pytest.mark.parametrize(
    ("config", "configured"),
    [
        ({"network": "voltbr0"}, True),
        ({"network": "br1", "boot": False}, True),
        ({"network": "voltbr0", "boot": True}, False),
        ({"network": "host"}, False),
        ({"network": "none"}, False),
        ({}, False),
    ],
)
def test_only_application_containers_on_a_bridge_are_configured_by_the_host(config, configured):
    assert _nspawn_network.configures_host0(config) is configured


def test_ipv4_picks_the_first_ipv4_address():
    assert _nspawn_network.ipv4(["fe80::1", "10.213.0.2", "10.213.0.3"]) == "10.213.0.2"
    assert _nspawn_network.ipv4(["fe80::1"]) is None and _nspawn_network.ipv4([]) is None


# -- resolv.conf ---------------------------------------------------------------------------------
@pytest.fixture
def resolvers(tmp_path, monkeypatch):
    """Point the uplink and host resolv.conf at files of the test; returns a writer for each."""
    uplink, host = tmp_path / "uplink.conf", tmp_path / "host.conf"
    monkeypatch.setattr(_nspawn_network, "UPLINK_RESOLV_CONF", str(uplink))
    monkeypatch.setattr(_nspawn_network, "HOST_RESOLV_CONF", str(host))
    return uplink, host


def test_upstream_servers_come_from_resolved_first_and_never_loopback(resolvers):
    uplink, host = resolvers
    host.write_text("nameserver 127.0.0.53\noptions edns0\nsearch example.org\n")
    assert _nspawn_network.upstream_resolv_conf() is None, "only the stub: nothing a container reaches"
    uplink.write_text("# resolved\nnameserver 192.0.2.1\nnameserver ::1\nnameserver 2001:db8::53\nsearch lan\n")
    text = _nspawn_network.upstream_resolv_conf()
    assert text.splitlines()[0].startswith(_nspawn_network.RESOLV_MARK)
    assert text.splitlines()[1:] == ["nameserver 192.0.2.1", "nameserver 2001:db8::53", "search lan"]
    uplink.unlink()
    host.write_text("nameserver 10.255.255.53\n")
    assert text != _nspawn_network.upstream_resolv_conf()
    assert "nameserver 10.255.255.53" in _nspawn_network.upstream_resolv_conf().splitlines()


def make_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    return root


def test_resolv_conf_is_written_when_missing_and_renewed_when_ours(tmp_path):
    root = make_root(tmp_path)
    ours = _nspawn_network.RESOLV_MARK + "\nnameserver 192.0.2.1\n"
    assert _nspawn_network.update_resolv_conf(str(root), ours) is True
    assert (root / "etc/resolv.conf").read_text() == ours
    assert oct(os.stat(root / "etc/resolv.conf").st_mode & 0o777) == "0o644"
    assert _nspawn_network.update_resolv_conf(str(root), ours) is False, "unchanged: not rewritten"
    renewed = _nspawn_network.RESOLV_MARK + "\nnameserver 192.0.2.2\n"
    assert _nspawn_network.update_resolv_conf(str(root), renewed) is True
    assert (root / "etc/resolv.conf").read_text() == renewed
    assert sorted(os.listdir(root / "etc")) == ["resolv.conf"], "no temporary file left"


def test_the_guests_own_resolv_conf_is_kept(tmp_path):
    root = make_root(tmp_path)
    (root / "etc/resolv.conf").write_text("nameserver 198.51.100.1\n")
    assert _nspawn_network.update_resolv_conf(str(root), _nspawn_network.RESOLV_MARK + "\n") is False
    assert (root / "etc/resolv.conf").read_text() == "nameserver 198.51.100.1\n"


def test_a_symlinked_resolv_conf_or_etc_never_leads_the_write_out_of_the_root(tmp_path):
    outside = tmp_path / "host-etc"
    outside.mkdir()
    root = make_root(tmp_path)
    os.symlink(str(outside / "resolv.conf"), root / "etc/resolv.conf")
    assert _nspawn_network.update_resolv_conf(str(root), _nspawn_network.RESOLV_MARK + "\n") is False
    assert os.listdir(outside) == []
    (root / "etc/resolv.conf").unlink()
    (root / "etc").rmdir()
    os.symlink(str(outside), root / "etc")  # the guest's /etc -> a host path, taken inside the root
    assert _nspawn_network.update_resolv_conf(str(root), _nspawn_network.RESOLV_MARK + "\n") is False
    assert os.listdir(outside) == []


# -- the backend ---------------------------------------------------------------------------------
class BridgeRunner:
    """`ip -json address show` of a bridge at 10.213.0.1/24; everything else succeeds quietly."""

    def run(self, argv, check=True, **_kwargs):
        if argv[:2] == ["ip", "-json"]:
            info = [{"family": "inet", "local": "10.213.0.1", "prefixlen": 24}]
            return 0, json.dumps([{"ifname": argv[-1], "addr_info": info}]), ""
        return 0, "", ""

    def which(self, program, extra_dirs=None):
        return None


@pytest.fixture
def backend(systemd_dirs):
    return _systemd.SystemdBackend(BridgeRunner(), systemd_dirs, {})


def record_of(backend, name):
    return _nspawn_files.parse_record(open(backend._settings(name)).read())


def test_each_container_gets_the_lowest_free_address_and_keeps_it(backend):
    config = {"command": ["/bin/true"], "network": "voltbr0"}
    backend._write_settings("a", config, {})
    backend._write_settings("b", config, {})
    assert record_of(backend, "a")["address"] == "10.213.0.2/24"
    assert record_of(backend, "b")["address"] == "10.213.0.3/24"
    assert record_of(backend, "b")["gateway"] == "10.213.0.1"
    dropin = open(backend._dropin("a")).read()
    assert '"volt-host0" "a" "10.213.0.2/24" "10.213.0.1"' in dropin
    assert backend._write_settings("a", dict(config, memory=1 << 26), record_of(backend, "a")) is True
    assert record_of(backend, "a")["address"] == "10.213.0.2/24", "an update keeps the address"
    assert backend._write_settings("a", dict(config, memory=1 << 26), record_of(backend, "a")) is False


def test_a_booted_container_or_the_hosts_network_gets_no_address(backend):
    backend._write_settings("booted", {"network": "voltbr0", "boot": True}, {})
    backend._write_settings("shared", {"command": ["/bin/true"], "network": "host"}, {})
    for name in ("booted", "shared"):
        assert "address" not in record_of(backend, name)
        assert "ExecStartPost" not in open(backend._dropin(name)).read()
