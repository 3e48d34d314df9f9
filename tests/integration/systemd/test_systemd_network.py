"""Bridge networking of application containers (the stub init configures nothing inside): host0
is configured from the host on every start of the unit, published ports answer from the host's
non-loopback addresses and from other network namespaces, and booted containers keep running
their own DHCP client. Checked on a real systemd host."""

from __future__ import annotations

import ipaddress
import shlex

import pytest

from ...polling import wait_for

UNIT = "volt-container@{}.service"
BRIDGE = ipaddress.ip_network("10.213.0.0/24")
# The addresses Volt gives out itself; the bridge's DHCP server keeps to the upper half.
STATIC = ipaddress.ip_network("10.213.0.0/25")
HTTPD = ["httpd", "-f", "-p", "80", "-h", "/srv/www"]
SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]
# A second network namespace on the fleet host, as another machine on a network the host is on.
CLIENT_NS = "volt-client"
CLIENT_SETUP = f"""
set -e
ip netns add {CLIENT_NS}
ip link add vt-host type veth peer name vt-client
ip link set vt-client netns {CLIENT_NS}
ip address add 10.99.0.1/24 dev vt-host
ip link set vt-host up
ip -n {CLIENT_NS} address add 10.99.0.2/24 dev vt-client
ip -n {CLIENT_NS} link set vt-client up
ip -n {CLIENT_NS} link set lo up
ip -n {CLIENT_NS} route add default via 10.99.0.1
"""
CLIENT_TEARDOWN = f"ip netns del {CLIENT_NS} 2>/dev/null; ip link del vt-host 2>/dev/null; true"


def unit(name: str) -> str:
    return shlex.quote(UNIT.format(name.replace("-", "\\x2d")))


def leader(target, name: str) -> int:
    return int(target.sh(f"machinectl show --property=Leader --value {shlex.quote(name)}").strip())


def in_netns(target, name: str, command: str) -> str:
    """A command of the host's own (ip, ping) run in the container's network namespace."""
    return target.sh(f"nsenter --target {leader(target, name)} --net {command}")


def fetch(target, url: str, netns: str | None = None) -> str:
    prefix = f"ip netns exec {netns} " if netns else ""
    return target.sh(f"{prefix}curl -s --max-time 3 {url} || true")


def info(target, name: str) -> dict:
    return target.volt("volt_container_info", name=name)["containers"][0]


def host0(target, name: str) -> ipaddress.IPv4Interface:
    line = in_netns(target, name, "ip -4 -o address show dev host0").split()
    return ipaddress.ip_interface(line[line.index("inet") + 1])


@pytest.fixture
def client(target):
    target.sh(CLIENT_TEARDOWN, check=False)
    target.sh(CLIENT_SETUP)
    yield CLIENT_NS
    target.sh(CLIENT_TEARDOWN, check=False)


def test_app_container_gets_an_address_a_route_and_dns(target, converge):
    result = converge(name="app1", image="busybox", command=SLEEPER)
    assert result["container"]["config"]["network"] == "voltbr0", "the bridge is the default"
    address = result["container"]["ip_address"]
    assert ipaddress.ip_address(address) in STATIC, result["container"]
    assert address != "10.213.0.1"
    assert host0(target, "app1") == ipaddress.ip_interface(f"{address}/24")
    assert "state UP" in in_netns(target, "app1", "ip link show dev host0")
    assert "default via 10.213.0.1 dev host0" in in_netns(target, "app1", "ip route show")
    assert info(target, "app1")["ip_address"] == address
    # Reachable both ways: the host answers the container and the container the host.
    assert " 0% packet loss" in in_netns(target, "app1", "busybox ping -c 1 -W 5 10.213.0.1")
    assert " 0% packet loss" in target.sh(f"busybox ping -c 1 -W 5 {address}")
    # networkd serves no DNS on the bridge: the guest gets the host's upstream resolvers.
    resolv = target.read(f"{target.rootfs('app1')}/etc/resolv.conf")
    upstream = [line for line in target.read("/etc/resolv.conf").splitlines() if line.startswith("nameserver")]
    assert upstream and all(line in resolv.splitlines() for line in upstream), resolv
    assert resolv.startswith("# Managed by armoredgate.volt")


def test_guest_resolv_conf_of_its_own_is_kept(target, converge):
    source = f"{target.data_dir}/with-dns"
    target.sh(
        f"cp -a {target.data_dir}/images/busybox {source} && echo 'nameserver 192.0.2.53' > {source}/etc/resolv.conf"
    )
    converge(name="owndns", rootfs=source, command=SLEEPER)
    assert target.read(f"{target.rootfs('owndns')}/etc/resolv.conf") == "nameserver 192.0.2.53\n"


def test_published_port_answers_from_host_addresses_and_other_namespaces(target, converge, client):
    result = converge(name="web", image="busybox", ports=["8080:80"], command=HTTPD)
    address = result["container"]["ip_address"]
    assert ipaddress.ip_address(address) in STATIC
    for url in ("http://10.213.0.1:8080/", "http://10.99.0.1:8080/", f"http://{address}:80/"):
        assert "hello from volt" in fetch(target, url), f"no answer from {url} on the host"
    # Another machine's view: through the host's address on the link it shares with the host.
    assert "hello from volt" in fetch(target, "http://10.99.0.1:8080/", netns=client)
    # nspawn never forwards loopback traffic (documented in the ports option).
    assert "hello from volt" not in fetch(target, "http://127.0.0.1:8080/")


def test_addresses_are_distinct_and_survive_a_restart_by_systemd(target, converge):
    first = converge(name="net-a", image="busybox", ports=["8081:80"], command=HTTPD)["container"]["ip_address"]
    second = converge(name="net-b", image="busybox", command=SLEEPER)["container"]["ip_address"]
    assert first != second and {first, second} <= {str(a) for a in STATIC.hosts()}
    # systemd alone (no module) restarts the unit: host0 is configured again, ports work again.
    old = leader(target, "net-a")
    target.sh(f"systemctl restart {unit('net-a')}")
    assert leader(target, "net-a") != old
    assert str(host0(target, "net-a").ip) == first
    assert wait_for(lambda: "hello from volt" in fetch(target, "http://10.213.0.1:8081/"), timeout=15)
    # The lowest free address is given again once its container is gone.
    assert target.volt(name="net-a", state="absent")["changed"] is True
    third = converge(name="net-c", image="busybox", command=SLEEPER)["container"]["ip_address"]
    assert third == first


def test_enabled_container_has_its_network_after_the_host_reboots(target, converge, fleet):
    result = converge(name="boot-net", image="busybox", ports=["8082:80"], command=HTTPD, enabled=True)
    address = result["container"]["ip_address"]
    target.reboot(fleet)
    assert wait_for(lambda: info(target, "boot-net")["status"] == "running", timeout=60)
    assert wait_for(lambda: "hello from volt" in fetch(target, "http://10.213.0.1:8082/"), timeout=30)
    assert str(host0(target, "boot-net").ip) == address
    assert info(target, "boot-net")["ip_address"] == address


def test_booted_container_runs_its_own_dhcp_client(target, converge):
    """A booted init owns its network: the host leaves host0 alone and the bridge's DHCP server
    leases an address outside the range Volt gives out itself."""
    source = f"{target.data_dir}/bootable-dhcp"
    script = "#!/bin/sh\\nip link set host0 up\\nudhcpc -i host0 -n -q -t 10 -s /etc/udhcpc.script\\nexec sleep 1000\\n"
    hook = '#!/bin/sh\\n[ "$1" = bound ] && ip address add $ip/$mask dev $interface\\nexit 0\\n'
    target.sh(
        f"cp -a {target.data_dir}/images/busybox {source} && mkdir -p {source}/sbin && rm -f {source}/sbin/init && "
        f"printf '{script}' > {source}/sbin/init && printf '{hook}' > {source}/etc/udhcpc.script && "
        f"chmod 755 {source}/sbin/init {source}/etc/udhcpc.script"
    )
    converge(name="dhcp-boot", rootfs=source, boot=True)
    assert "ExecStartPost" not in target.sh(f"cat /etc/systemd/system/{unit('dhcp-boot')}.d/50-volt.conf")
    assert wait_for(lambda: info(target, "dhcp-boot")["ip_address"], timeout=30)
    leased = ipaddress.ip_address(info(target, "dhcp-boot")["ip_address"])
    assert leased in BRIDGE and leased not in STATIC, leased
