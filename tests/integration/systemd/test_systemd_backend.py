"""What only the systemd backend does: limits, bridge networking, published ports, restart
policy and start at boot, checked on a real systemd host."""

from __future__ import annotations

import shlex

from ...polling import wait_for

SLEEPER = ["/bin/sh", "-c", "echo started; exec sleep 1000"]
UNIT = "volt-container@{}.service"


def show(target, name, prop):
    unit = shlex.quote(UNIT.format(name.replace("-", "\\x2d")))
    return target.sh(f"systemctl show --value -p {prop} {unit}").strip()


def test_limits_apply_in_place(target, converge):
    base = {"name": "lim-1", "image": "busybox", "command": SLEEPER}
    first = converge(memory="64M", cpus=0.5, **base)
    assert show(target, "lim-1", "MemoryMax") == str(64 * 1024 * 1024)
    assert show(target, "lim-1", "CPUQuotaPerSecUSec") == "500ms"
    target.sh(f"touch {target.rootfs('lim-1')}/root/marker")

    second = converge(memory="128M", cpus=0.5, **base)
    assert second["drifted"] == ["memory"] and second["actions"] == ["update", "stop", "start"]
    assert show(target, "lim-1", "MemoryMax") == str(128 * 1024 * 1024)
    assert target.exists(f"{target.rootfs('lim-1')}/root/marker"), "changed in place, not recreated"
    assert second["container"]["pid"] != first["container"]["pid"]


def test_restart_policy_brings_a_killed_payload_back(target, converge):
    base = {"name": "phoenix", "image": "busybox", "command": SLEEPER, "restart_policy": "on-failure"}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: target.descendants(pid))
    target.sh(f"kill -9 {' '.join(map(str, target.descendants(pid)))}")

    def restarted():
        info = target.volt("volt_container_info", name="phoenix")["containers"][0]
        return info["status"] == "running" and info["pid"] not in (None, pid)

    assert wait_for(restarted, timeout=30)


def test_bridge_gives_an_address_that_reaches_the_host(target, converge):
    # The guest configures nothing: the host has set up host0 by the time the module returns.
    converge(name="bridged", image="busybox", network="voltbr0", command=SLEEPER)

    def guest(*argv):
        return target.volt("volt_exec", name="bridged", argv=list(argv))

    assert "10.213.0." in guest("ip", "-4", "-o", "addr", "show", "host0")["stdout"]
    pinged = guest("ping", "-c", "1", "-W", "5", "10.213.0.1")
    assert pinged["rc"] == 0, pinged
    info = target.volt("volt_container_info", name="bridged")["containers"][0]
    assert any(address.startswith("10.213.0.") for address in info["addresses"]), info
    assert "vb-bridged" in target.sh("ip -br link show master voltbr0")


def test_published_port_answers_on_the_host(target, converge):
    command = ["httpd", "-f", "-p", "8080", "-h", "/srv/www"]
    converge(name="pub", image="busybox", network="voltbr0", ports=["18080:8080"], command=command)
    # nspawn publishes on the host's addresses; the bridge address is one of them.
    assert wait_for(
        lambda: "hello from volt" in target.sh("curl -s --max-time 2 http://10.213.0.1:18080/ || true"), timeout=30
    )


def test_enabled_container_runs_again_after_the_host_reboots(target, converge, fleet):
    converge(name="boot", image="busybox", command=SLEEPER, enabled=True)
    converge(name="manual", image="busybox", command=SLEEPER)
    assert target.sh(f"systemctl is-enabled {UNIT.format('boot')}").strip() == "enabled"
    target.reboot(fleet)

    def status(name):
        return target.volt("volt_container_info", name=name)["containers"][0]["status"]

    assert wait_for(lambda: status("boot") == "running", timeout=60)
    assert status("manual") == "stopped"
    assert target.volt(name="boot", image="busybox", command=SLEEPER, enabled=True)["changed"] is False


def test_bad_systemd_input_fails_clearly_and_writes_nothing(target):
    cases = [
        ({"memory": "12Q"}, "memory '12Q' is not a size"),
        ({"network": "nobr0"}, "network 'nobr0' is not a bridge on this host"),
        ({"network": "host", "ports": ["18081:8081"]}, "need a private network"),
        ({"command": ["/bin/sh", "-c", "echo a\necho b"]}, "cannot contain a newline"),
        ({"kernel_release": "5.15.0"}, "kernel_release is not supported by the systemd backend"),
    ]
    before = target.snapshot()
    for args, message in cases:
        result = target.volt(name="bad-1", image="busybox", **args)
        assert result.get("failed"), args
        assert message in result["msg"], (args, result["msg"])
    assert target.snapshot() == before


def test_network_none_leaves_only_loopback(target, converge):
    command = ["/bin/sh", "-c", "ip -o link > /root/links.txt; exec sleep 1000"]
    converge(name="isolated", image="busybox", network="none", command=command)
    links = f"{target.rootfs('isolated')}/root/links.txt"
    assert wait_for(lambda: target.read(links))
    assert [line.split(":")[1].strip() for line in target.read(links).splitlines()] == ["lo"]


def test_boot_runs_the_image_init(target, converge):
    source = f"{target.data_dir}/bootable"
    target.sh(
        f"cp -a {target.data_dir}/images/busybox {source} && mkdir -p {source}/sbin && rm -f {source}/sbin/init && "
        f"printf '#!/bin/sh\\necho \"booted as $$\" > /root/booted.txt\\nexec sleep 1000\\n' > {source}/sbin/init && "
        f"chmod 755 {source}/sbin/init"
    )
    result = converge(name="booted", rootfs=source, boot=True)
    assert result["container"]["status"] == "running"
    booted = f"{target.rootfs('booted')}/root/booted.txt"
    assert wait_for(lambda: target.read(booted))
    assert target.read(booted).strip() == "booted as 1", "the image's init runs as PID 1"
    assert "Boot=yes" in target.read("/etc/systemd/nspawn/booted.nspawn")
