"""The systemd backend's lifecycle on a real systemd host: images without /usr, graceful stops
by systemctl, machinectl and a host poweroff within stop_timeout, removal during a pending stop,
and containers on the bridge started at boot."""

from __future__ import annotations

import re
import shlex
import time

from ...polling import wait_for

SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]
UNIT = "volt-container@{}.service"

# A payload that logs (with the kernel's uptime, one clock for the host and every container)
# when it starts, when SIGTERM (or SIGHUP) reaches it and when its TERM handler has finished.
# The handler takes `delay` seconds and notes whether the container's files were still there.
# Its sleep ignores SIGTERM: with KillMode=control-group systemd signals every process in the
# cgroup, and again any process forked while it does so, so a sleep forked by the handler may get
# the same SIGTERM (measured: 6 of 40 stops) and end the handler early.
GRACEFUL = (
    'mark() {{ read up _ < /proc/uptime; echo "$1 $up" >> /marks/log; }};'
    " on_term() {{ trap '' TERM; mark term; sleep {delay};"
    " if [ -e /etc/os-release ]; then mark intact; else mark gone; fi; mark exit; exit 0; }};"
    " trap on_term TERM; trap 'mark hup' HUP; mark start; while :; do sleep 0.1; done"
)


def unit(name: str) -> str:
    return shlex.quote(UNIT.format(name.replace("-", "\\x2d")))


def marks_dir(target, name: str) -> str:
    path = f"{target.data_dir}/marks-{name}"
    target.sh(f"mkdir -p {path} && rm -f {path}/log")
    return path


def graceful(target, name: str, delay: float = 1, **extra) -> dict:
    """Args of a container running GRACEFUL, its log in a volume that outlives it."""
    return {
        "name": name,
        "image": "busybox",
        "command": ["/bin/sh", "-c", GRACEFUL.format(delay=delay)],
        "volumes": [f"{marks_dir(target, name)}:/marks"],
        **extra,
    }


def events(target, name: str) -> list[tuple[str, float]]:
    text = target.read(f"{target.data_dir}/marks-{name}/log")
    return [(line.split()[0], float(line.split()[1])) for line in text.splitlines() if len(line.split()) == 2]


def timed(target, script: str) -> float:
    """Seconds the script takes on the host."""
    out = target.sh(f"read s _ < /proc/uptime; {script}; read e _ < /proc/uptime; echo $s $e")
    start, end = map(float, out.split()[-2:])
    return end - start


def wait_inactive(name: str) -> str:
    return f"for i in $(seq 1200); do systemctl is-active -q {unit(name)} || break; sleep 0.1; done"


def started(target, name: str) -> bool:
    return [event for event, _when in events(target, name)].count("start") >= 1 and (
        target.sh(f"systemctl is-active {unit(name)} || true").strip() == "active"
    )


def failed_units(target) -> str:
    return target.sh("systemctl list-units --failed --all --plain --no-legend 'volt-container@*' || true").strip()


def test_an_image_without_usr_runs_and_stays_untouched(target, converge):
    image = f"{target.data_dir}/images/bare"
    target.sh(f"rm -rf {image} && cp -a {target.data_dir}/images/busybox {image} && rm -rf {image}/usr")
    result = converge(name="bare", image="bare", command=SLEEPER)
    assert result["container"]["status"] == "running"
    assert target.exists(f"{target.rootfs('bare')}/usr"), "nspawn needs /usr in the container's tree"
    assert not target.exists(f"{image}/usr"), "the image itself is never changed"


def test_systemctl_and_machinectl_stop_gracefully_within_stop_timeout(target, converge):
    converge(**graceful(target, "calm", stop_timeout=5))
    assert wait_for(lambda: started(target, "calm"), timeout=20)
    assert show_value(target, "calm", "TimeoutStopUSec") == "5s"

    took = timed(target, f"systemctl stop {unit('calm')}")
    print(f"systemctl stop: {took:.1f}s")
    assert took < 5 + 3, f"systemctl stop took {took:.1f}s"
    assert [e for e, _when in events(target, "calm")] == ["start", "term", "intact", "exit"], "SIGTERM only, handled"

    target.sh(f"systemctl start {unit('calm')}")
    assert wait_for(lambda: len(events(target, "calm")) == 5, timeout=20)
    took = timed(target, f"systemctl restart {unit('calm')}")
    print(f"systemctl restart: {took:.1f}s")
    assert took < 5 + 3, f"systemctl restart took {took:.1f}s"
    assert wait_for(lambda: [e for e, _when in events(target, "calm")].count("start") == 3, timeout=20)
    assert [e for e, _when in events(target, "calm")][5:9] == ["term", "intact", "exit", "start"]

    # machinectl goes through nspawn's stub init: SIGTERM, then SIGHUP, to the payload.
    took = timed(target, f"machinectl poweroff calm && {wait_inactive('calm')}")
    print(f"machinectl poweroff: {took:.1f}s")
    assert took < 5 + 3, f"machinectl poweroff took {took:.1f}s"
    assert {"term", "exit"} <= {e for e, _when in events(target, "calm")[9:]}
    assert failed_units(target) == ""


def show_value(target, name: str, prop: str) -> str:
    return target.sh(f"systemctl show --value -p {prop} {unit(name)}").strip()


def test_enabled_containers_stop_gracefully_at_host_poweroff_and_run_after_boot(target, converge, fleet):
    bridged = graceful(target, "pw-br", stop_timeout=8, enabled=True, network="voltbr0")
    hosted = graceful(target, "pw-host", stop_timeout=8, enabled=True, network="host")
    for args in (bridged, hosted):
        converge(**args)
    assert wait_for(lambda: started(target, "pw-br") and started(target, "pw-host"), timeout=20)
    # Only a container on the bridge waits for it at boot.
    assert "voltbr0" in show_value(target, "pw-br", "ExecStartPre")
    assert show_value(target, "pw-host", "ExecStartPre") == ""

    with open("/proc/uptime") as handle:  # the fleet's hosts share this machine's kernel
        poweroff_at = float(handle.read().split()[0])
    reboot = target.reboot(fleet)
    took = re.search(r"timing: reboot of \S+ ([0-9.]+)s", reboot.stderr + reboot.stdout)
    print(f"fleet reboot: {took.group(1) if took else '?'}s")

    for name, args in (("pw-br", bridged), ("pw-host", hosted)):
        assert wait_for(lambda name=name: started(target, name) and len(events(target, name)) >= 5, timeout=60), (
            name,
            events(target, name),
            target.sh(f"journalctl -b -u {unit(name)} --no-pager | tail -20", check=False),
        )
        log = events(target, name)
        assert [e for e, _when in log] == ["start", "term", "intact", "exit", "start"], (name, log)
        term, exit_ = log[1][1], log[3][1]
        print(
            f"{name}: SIGTERM +{term - poweroff_at:.1f}s, exited +{exit_ - poweroff_at:.1f}s after the poweroff began"
        )
        assert term - poweroff_at < 5, f"{name}: SIGTERM {term - poweroff_at:.1f}s after the poweroff began"
        assert exit_ - poweroff_at < 8, f"{name}: exited {exit_ - poweroff_at:.1f}s after the poweroff began"
        again = target.volt(**dict(args))
        assert again["changed"] is False, again
    assert failed_units(target) == ""


def test_absent_during_a_pending_stop_ends_the_payload_first(target, converge):
    for name, delay, timeout in (("slow", 4, 10), ("stubborn", 1000, 2)):
        args = graceful(target, name, delay=delay, stop_timeout=timeout)
        converge(**args)
        assert wait_for(lambda name=name: started(target, name), timeout=20)
        target.sh(f"systemctl stop --no-block {unit(name)}")
        time.sleep(0.5)  # the stop job is running: the unit is deactivating
        begun = time.monotonic()
        result = target.volt(name=name, state="absent", stop_timeout=timeout)
        took = time.monotonic() - begun
        assert not result.get("failed") and result["changed"] is True, result
        assert took < timeout + 8, f"absent took {took:.1f}s"
        timeline = events(target, name)
        log = [e for e, _when in timeline]
        if name == "slow":
            assert log == ["start", "term", "intact", "exit"], "the payload ended before its files went"
            assert timeline[3][1] - timeline[1][1] >= delay - 0.2, ("the handler was cut short", timeline)
        else:
            assert "gone" not in log and "exit" not in log, "killed (SIGKILL) before its files went"
        assert not target.exists(target.rootfs(name))
        assert target.sh(f"systemctl show -p LoadState,ActiveState {unit(name)}").split() in (
            ["LoadState=not-found", "ActiveState=inactive"],
            ["LoadState=loaded", "ActiveState=inactive"],
        )
        assert target.sh(f"ps -e -o args= | grep -c -- '[-]-machine={name} ' || true").strip() == "0"
        assert failed_units(target) == ""
        assert not target.exists(f"{target.data_dir}/locks/{name}.lock")
