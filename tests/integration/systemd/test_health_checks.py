"""healthcheck on a real systemd host: a timer of systemd runs each probe as a oneshot service,
inside the container (nsenter, as volt_exec), and the container's health follows the probes:
starting, healthy, unhealthy after `retries` failures, healthy again; state=healthy waits for
it; restart_on_unhealthy has the restart policy restart the payload; a stop stops the probes and
absent leaves nothing of them behind. The cost of a probe is measured (printed, never asserted)."""

from __future__ import annotations

import re
import shlex
import time

import pytest

from ...polling import wait_for

HTTPD = ["httpd", "-f", "-p", "8099", "-h", "/srv/www"]
# network none: the host has no port 8099 of the container's, so a passing probe ran inside it.
PROBE = {"test": ["wget", "-q", "-O-", "http://127.0.0.1:8099/"], "interval": 1, "timeout": 2, "retries": 2}


def escaped(name: str) -> str:
    return name.replace("-", "\\x2d")


def timer(name: str) -> str:
    return f"volt-health@{escaped(name)}.timer"


def service(name: str) -> str:
    return f"volt-health@{escaped(name)}.service"


def health(target, name: str) -> dict | None:
    return target.volt("volt_container_info", name=name)["containers"][0]["health"]


def wait_health(target, name: str, status: str, timeout: float = 30) -> dict:
    seen: dict = {}

    def reached() -> bool:
        seen["health"] = health(target, name)
        return bool(seen["health"]) and seen["health"]["status"] == status

    assert wait_for(reached, timeout=timeout), seen
    return seen["health"]


def is_active(target, unit: str) -> str:
    return target.sh(f"systemctl is-active {shlex.quote(unit)} || true").strip()


def show(target, unit: str, *props: str) -> dict[str, str]:
    out = target.sh(f"systemctl show -p {','.join(props)} {shlex.quote(unit)}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def leftovers(target, name: str) -> str:
    """Every file and loaded unit of the container's health check."""
    paths = [
        f"/etc/systemd/system/{timer(name)}.d",
        f"/etc/systemd/system/{service(name)}.d",
        f"{target.data_dir}/health/{name}.env",
        f"/run/volt/health/{name}",
        f"/run/volt/health/{name}.new",
        f"/run/volt/health/{name}.rc",
    ]
    found = target.sh(f"ls -d {' '.join(shlex.quote(path) for path in paths)} 2>/dev/null; true")
    units = target.sh(f"systemctl list-units --all --no-legend --plain {shlex.quote('volt-health@*')}; true")
    return (found + units).strip()


@pytest.fixture(autouse=True)
def no_health_units_left(target):
    """The shared cleanup knows the container units only: remove the health units too."""
    yield
    target.sh(
        "systemctl stop 'volt-health@*' 2>/dev/null; rm -rf /etc/systemd/system/volt-health@?*.d"
        " /run/volt/health /run/systemd/system/volt-health@?*.d; systemctl daemon-reload;"
        " systemctl reset-failed 'volt-health@*' 2>/dev/null; true",
        check=False,
    )


def medic(name: str = "medic", **extra) -> dict:
    return {"name": name, "image": "busybox", "command": HTTPD, "network": "none", "healthcheck": PROBE, **extra}


def test_probes_run_inside_the_container_and_follow_its_health(target, converge):
    since = target.sh("date '+%Y-%m-%d %H:%M:%S'").strip()
    applied = converge(**medic())
    assert applied["container"]["config"]["healthcheck"]["interval"] == 1.0
    assert is_active(target, timer("medic")) == "active"
    healthy = wait_health(target, "medic", "healthy")
    assert healthy["failing_streak"] == 0 and healthy["last_exit_code"] == 0
    # Served by the container's httpd on its own loopback: the probe ran in its namespaces.
    assert healthy["last_output"] == "hello from volt\n"
    timers = target.sh(f"systemctl show -p TimersMonotonic,AccuracyUSec {shlex.quote(timer('medic'))}")
    assert "OnActiveUSec=1s" in timers and "OnUnitInactiveUSec=1s" in timers and "AccuracyUSec=50ms" in timers
    record = target.sh("stat -c '%a %U' /run/volt/health /run/volt/health/medic").split("\n")
    assert record[:2] == ["700 root", "600 root"]
    assert target.sh(f"stat -c '%a' {target.data_dir}/health/medic.env").strip() == "600"

    # The page goes: httpd answers 404, the probe fails, twice in a row makes it unhealthy.
    page = f"{target.rootfs('medic')}/srv/www/index.html"
    target.sh(f"mv {page} {page}.away")
    sick = wait_health(target, "medic", "unhealthy")
    assert sick["failing_streak"] >= 2 and sick["last_exit_code"] == 1
    assert "404" in sick["last_output"], sick
    assert target.volt("volt_container_info", name="medic")["containers"][0]["status"] == "running"
    target.sh(f"mv {page}.away {page}")
    again = wait_health(target, "medic", "healthy")
    assert again["failing_streak"] == 0 and again["last_output"] == "hello from volt\n"

    # No change, no rewrite: the drop-ins stay as they are (converge checked the files).
    assert target.volt(**medic())["changed"] is False
    # Probes leave no journal lines of their own (systemd's starting and finished included).
    journal = f"journalctl -q -u {shlex.quote(service('medic'))} --since {shlex.quote(since)} -o cat; true"
    assert target.sh(journal).strip() == ""


def test_the_probe_runs_in_the_container_workdir_with_its_environment(target):
    check = {"test": "pwd; echo $GREETING; cat /etc/os-release", "interval": 1, "retries": 1}
    args = medic("asker", healthcheck=check, env={"GREETING": "hi there"}, workdir="/srv")
    target.volt("volt_container", secret_env={"TOKEN": "s3cret"}, **args)
    output = wait_health(target, "asker", "healthy")["last_output"].splitlines()
    # The container's os-release, not the host's.
    assert output[:2] == ["/srv", "hi there"] and 'NAME="Volt test"' in output, output
    # The secret is in the private environment file, never in a unit setting anyone can read.
    assert "s3cret" not in target.sh(f"systemctl show {shlex.quote(service('asker'))} {shlex.quote(timer('asker'))}")
    assert "s3cret" in target.sh(f"cat {target.data_dir}/health/asker.env")


def test_state_healthy_fails_with_the_probe_output_when_it_never_passes(target):
    args = medic("no-hope", healthcheck={"test": ["sh", "-c", "echo not today; false"], "interval": 1, "retries": 1})
    started = time.monotonic()
    result = target.volt(state="healthy", healthy_wait_timeout=5, **args)
    assert result.get("failed") and "not today" in result["msg"], result
    assert time.monotonic() - started < 30
    assert health(target, "no-hope")["status"] == "unhealthy"
    # Healthy at once when it passes.
    fixed = target.volt(state="healthy", healthy_wait_timeout=30, **medic("no-hope"))
    assert not fixed.get("failed"), fixed.get("msg")
    assert health(target, "no-hope")["status"] == "healthy"


def test_restart_on_unhealthy_has_the_restart_policy_restart_the_payload(target):
    command = ["/bin/sh", "-c", "touch /srv/alive; exec " + " ".join(HTTPD)]
    check = {"test": ["test", "-e", "/srv/alive"], "interval": 1, "retries": 2}
    args = medic("lazarus", command=command, healthcheck=check, restart_on_unhealthy=True, restart_policy="always")
    first = target.volt(state="healthy", healthy_wait_timeout=30, **args)
    assert not first.get("failed"), first.get("msg")
    unit = f"volt-container@{escaped('lazarus')}.service"
    assert show(target, unit, "NRestarts")["NRestarts"] == "0"
    target.sh(f"rm {target.rootfs('lazarus')}/srv/alive")
    assert wait_for(lambda: show(target, unit, "NRestarts")["NRestarts"] == "1", timeout=30)
    # The new run starts over (and touches /srv/alive again): healthy, and restarted only once.
    wait_health(target, "lazarus", "healthy")
    info = target.volt("volt_container_info", name="lazarus")["containers"][0]
    assert info["restart_count"] == 1 and info["pid"] != first["container"]["pid"]
    assert show(target, unit, "NRestarts")["NRestarts"] == "1"


def test_a_stop_stops_the_probes_and_absent_leaves_nothing(target):
    target.volt(state="healthy", healthy_wait_timeout=30, **medic())
    target.volt(state="stopped", **medic())
    assert is_active(target, timer("medic")) == "inactive"
    assert health(target, "medic") is None
    before = target.sh("stat -c %Y.%s /run/volt/health/medic 2>/dev/null; true")
    time.sleep(3)
    assert target.sh("stat -c %Y.%s /run/volt/health/medic 2>/dev/null; true") == before, "a probe ran"
    target.volt(state="started", **medic())
    assert is_active(target, timer("medic")) == "active", "a start starts the timer again"
    wait_health(target, "medic", "healthy")

    # A crash without restart policy: the timer stops with the unit.
    target.sh(f"systemctl kill --signal=SIGKILL volt-container@{escaped('medic')}.service")
    assert wait_for(lambda: is_active(target, timer("medic")) == "inactive", timeout=15)

    # The check removed: the timer and its drop-ins go, the container stays.
    target.volt(state="started", **medic())
    changed = target.volt(state="started", **medic(healthcheck={}))
    assert changed["changed"] and changed["container"]["health"] is None
    assert leftovers(target, "medic") == ""
    target.volt(state="started", **medic())
    assert target.volt(name="medic", state="absent")["changed"]
    assert leftovers(target, "medic") == ""


def test_the_cost_of_a_probe(target):
    """What one probe costs the host: the CPU time (user + system, every process of it: env, sh,
    machinectl, timeout, nsenter, wget, head, mv) of the service's own command run by hand under
    bash's `time` (the fleet's hosts have no CPU accounting of systemd's), and the wall time of
    the service's runs as systemd saw them."""
    target.volt(state="healthy", healthy_wait_timeout=30, **medic())
    walls = []
    for _sample in range(5):
        runs = show(target, service("medic"), "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic")
        walls.append(
            (int(runs["ExecMainExitTimestampMonotonic"]) - int(runs["ExecMainStartTimestampMonotonic"])) / 1000
        )
        time.sleep(1.1)
    command = " ".join(
        shlex.quote(word) for word in exec_start(target.read(f"/etc/systemd/system/{service('medic')}.d/50-volt.conf"))
    )
    script = f"TIMEFORMAT='%R %U %S'; for i in 1 2 3 4 5 6 7 8 9 10; do time {{ {command}; }}; done"
    times = [line.split() for line in target.sh(f"bash -c {shlex.quote(script)} 2>&1").splitlines() if line.strip()]
    cpu = sorted((float(user) + float(system)) * 1000 for _real, user, system in times)
    real = sorted(float(real) * 1000 for real, _user, _system in times)
    assert len(cpu) == 10 and health(target, "medic")["status"] == "healthy"
    print(
        f"\nprobe (busybox wget): CPU {cpu[0]:.0f}-{cpu[-1]:.0f} ms (median {cpu[5]:.0f}) and wall"
        f" {real[0]:.0f}-{real[-1]:.0f} ms (median {real[5]:.0f}) by hand; service runs' wall time"
        f" {min(walls):.0f}-{max(walls):.0f} ms"
    )


def exec_start(dropin: str) -> list[str]:
    """The words of the drop-in's ExecStart= (every word double-quoted, as Volt writes them)."""
    line = next(line for line in dropin.splitlines() if line.startswith("ExecStart="))
    words = re.findall(r'"((?:[^"\\]|\\.)*)"', line)
    return [re.sub(r"\\(.)", r"\1", word).replace("$$", "$").replace("%%", "%") for word in words]
