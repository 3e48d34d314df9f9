# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bridge networking of application containers on the systemd backend.

Under nspawn's stub init (ProcessTwo=yes) nothing inside the container configures its network:
host0 comes up down and without an address, and nspawn adds its Port= forwarding only once the
container has an IPv4 address. So the unit's drop-in carries an ExecStartPost= that configures
host0 from the host on every start of the unit (the module's starts, `systemctl restart`,
Restart=, boot): it enters the container's network namespace and runs the host's own `ip`, so
images need no tools. A booted container (boot: true) runs its own network stack and is left
alone; the bridge's DHCP server is there for it.

Addresses: each container keeps one address, recorded in its .nspawn record: the lowest free one
in the lower half of the bridge's subnet (the bridge's own address excepted). networkd's DHCP
server pool is the whole subnet by default; the systemd_host role moves it to the upper half.

DNS: networkd's DHCP server hands out the host's upstream servers, and nothing answers DNS on the
bridge address (resolved listens on 127.0.0.53 only). So the guest's /etc/resolv.conf gets the
host's upstream resolvers, written only when the guest has none or the one there is Volt's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
from typing import Iterator

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _guest_path, _records

# Held while an address is chosen and recorded: two containers created at once must not
# take the same one (the per-container locks are per data dir; the addresses are per host).
LOCK_DIR = "/run/volt"
RESOLV_MARK = "# Managed by armoredgate.volt"
RESOLV_HEADER = f"{RESOLV_MARK}: the host's upstream DNS servers, renewed when Volt starts the container"
# resolved's list of the uplinks' servers; the host's /etc/resolv.conf may name only its stub.
UPLINK_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
HOST_RESOLV_CONF = "/etc/resolv.conf"

# Run by systemd as ExecStartPost=/bin/sh -c SCRIPT volt-host0 NAME ADDRESS/PREFIX GATEWAY.
# Constant text: every value comes in as an argument. `replace` makes a second run harmless.
HOST0_SCRIPT = (
    "set -e; "
    'leader=$(machinectl show --property=Leader --value "$1"); '
    'guest() { nsenter --target "$leader" --net -- ip "$@"; }; '
    "guest link set dev host0 up; "
    'guest address replace "$2" dev host0; '
    'guest route replace default via "$3" dev host0'
)


def configures_host0(config: dict) -> bool:
    """An application container on a bridge: nothing but the host will configure its host0."""
    return config.get("network") not in (None, "host", "none") and not config.get("boot")


def allocation_lock() -> _records.Lock:
    return _records.Lock(LOCK_DIR, "addresses")


def bridge_interface(runner, bridge: str) -> ipaddress.IPv4Interface | None:
    """The bridge's IPv4 address and prefix on the host, or None when Volt must not give out
    addresses on it: it has none, or it also has ports other than containers' links (a bridge to
    a LAN, whose address plan Volt does not know)."""
    try:
        ports = os.listdir(f"/sys/class/net/{bridge}/brif")
    except FileNotFoundError:
        ports = []
    if any(not port.startswith("vb-") for port in ports):
        return None
    rc, out, _err = runner.run(["ip", "-json", "-4", "address", "show", "dev", bridge], check=False)
    try:
        links = json.loads(out) if rc == 0 else []
    except ValueError:
        links = []
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if info.get("family") == "inet" and info.get("local") and isinstance(info.get("prefixlen"), int):
                return ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")
    return None


def static_range(bridge: ipaddress.IPv4Interface) -> Iterator[ipaddress.IPv4Address]:
    """Volt's own addresses, lowest first: the lower half of the subnet (the DHCP pool takes the
    upper half), without the network address and the bridge's own."""
    network = bridge.network
    for offset in range(1, network.num_addresses // 2):
        address = network.network_address + offset
        if address != bridge.ip:
            yield address


def fits(address: str | None, bridge: ipaddress.IPv4Interface) -> bool:
    """Whether a recorded ADDRESS/PREFIX is still one Volt would give on this bridge."""
    try:
        interface = ipaddress.IPv4Interface(address or "")
    except ValueError:
        return False
    return interface.network == bridge.network and interface.ip in set(static_range(bridge))


def recorded_addresses(nspawn_dir: str, but: str) -> set[ipaddress.IPv4Address]:
    """The addresses in every Volt record of the host (every data dir), except container `but`'s."""
    taken = set()
    try:
        entries = os.listdir(nspawn_dir)
    except FileNotFoundError:
        return taken
    for entry in entries:
        if not entry.endswith(".nspawn") or entry == f"{but}.nspawn":
            continue
        try:
            with open(os.path.join(nspawn_dir, entry), encoding="utf-8", errors="replace") as handle:
                record = _nspawn_files.parse_record(handle.readline())
            taken.add(ipaddress.IPv4Interface(record["address"]).ip)
        except (OSError, ValueError, TypeError, KeyError):
            continue  # another tool's file, or a record without an address
    return taken


def choose(bridge: ipaddress.IPv4Interface, taken: set[ipaddress.IPv4Address]) -> str:
    """The lowest free address, as ADDRESS/PREFIX."""
    for address in static_range(bridge):
        if address not in taken:
            return f"{address}/{bridge.network.prefixlen}"
    raise VoltError(
        f"no free address left for a container in the lower half of {bridge.network} "
        "(the upper half is the bridge's DHCP pool)"
    )


def exec_start_post(name: str, address: str, gateway: str) -> list[str]:
    """The ExecStartPost= command line that configures host0 of container `name`."""
    return ["/bin/sh", "-c", HOST0_SCRIPT, "volt-host0", name, address, gateway]


def ipv4(addresses: list[str]) -> str | None:
    """The first IPv4 address of a list of addresses (machined lists IPv6 ones too)."""
    for address in addresses:
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv4Address(address))
    return None


# -- DNS ---------------------------------------------------------------------------------------
def upstream_resolv_conf() -> str | None:
    """resolv.conf text with the host's upstream resolvers, or None when the host has none a
    container can reach (loopback servers, such as resolved's stub, are not reachable from it)."""
    for path in (UPLINK_RESOLV_CONF, HOST_RESOLV_CONF):
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        servers = [line.split()[1] for line in lines if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
        usable = [server for server in servers if _reachable_server(server)]
        if usable:
            search = [line.strip() for line in lines if line.split()[:1] in (["search"], ["domain"])]
            body = [f"nameserver {server}" for server in usable] + search
            return "\n".join([RESOLV_HEADER, *body]) + "\n"
    return None


def _reachable_server(server: str) -> bool:
    try:
        address = ipaddress.ip_address(server.split("%", maxsplit=1)[0])
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified)


def update_resolv_conf(rootfs: str, text: str) -> bool:
    """Write text to the guest's /etc/resolv.conf when the guest has none or Volt wrote the one
    there; True if it wrote. Walked by directory fds: the tree is the guest's to change."""
    root_fd = _guest_path.open_root(rootfs)
    try:
        location = _guest_path.locate(root_fd, "/etc/resolv.conf", follow=False)
    except OSError:
        return False  # no /etc: an image that does not use one
    finally:
        os.close(root_fd)
    with location:
        current = _own_file(location)
        if current == text or (current is not None and not current.startswith(RESOLV_MARK)):
            return False
        _guest_path.replace_file(location, text)
    return True


def _own_file(location: _guest_path.Location) -> str | None:
    """The text of the guest's resolv.conf; None when there is none. A symlink or anything but a
    small regular file is the guest's own (an empty marker-less text)."""
    try:
        status = os.stat(location.name, dir_fd=location.dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(status.st_mode) or status.st_size > 65536:
        return ""
    fd = os.open(location.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=location.dir_fd)
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        return handle.read()
