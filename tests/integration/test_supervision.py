"""Restart policies on every backend (conftest.TARGETS): a killed payload comes back within the
backoff, on-failure leaves a clean exit alone, the retry limit holds, and a stop leaves nothing
behind. On proot, the supervisor's log rotation loses no line and the info module reads across
the rotated files."""

from __future__ import annotations

import secrets

import pytest

from ..polling import wait_for

SLEEPER = ["sleep", "4711"]  # a duration no other test uses: found by its command line


def info(target, name):
    containers = target.volt("volt_container_info", name=name)["containers"]
    return containers[0] if containers else None


def payloads(target, name):
    """The host pids of the container's `sleep 4711`."""
    record = info(target, name)
    if not record or not record["pid"]:
        return []
    pids = [record["pid"], *target.descendants(record["pid"])]
    found = []
    for pid in pids:
        argv = target.sh(f"tr '\\0' ' ' < /proc/{int(pid)}/cmdline 2>/dev/null || true").split()
        if argv[-2:] == SLEEPER and "proot" not in argv[0]:
            found.append(pid)
    return found


def supervision_left(target, name):
    """What still runs for the container on the host: its supervisor (proot) or unit (systemd)."""
    if target.backend == "proot":
        directory = f"{target.data_dir}/containers/{name}"
        return target.sh(f"pgrep -f '[v]olt-supervise {directory} ' || true").split()
    state = target.sh(f"systemctl is-active 'volt-container@{name}.service' || true").strip()
    return [] if state in ("inactive", "failed", "unknown") else [state]


def test_a_killed_payload_is_restarted_within_the_backoff(target, converge):
    args = {"name": "phoenix", "image": "busybox", "command": SLEEPER, "restart_policy": "on-failure"}
    converge(**args)
    (first,) = payloads(target, "phoenix")
    target.sh(f"kill -9 {int(first)}")
    assert wait_for(lambda: payloads(target, "phoenix") not in ([], [first]), timeout=15)
    record = info(target, "phoenix")
    assert record["status"] == "running" and record["restart_count"] == 1, record
    # Restarted by the policy, so nothing is left to change.
    again = target.volt(**args)
    assert again["changed"] is False, again
    target.volt(name="phoenix", state="stopped")
    assert supervision_left(target, "phoenix") == []
    assert payloads(target, "phoenix") == []
    target.volt(name="phoenix", state="absent")


def test_on_failure_leaves_a_clean_exit_alone(target):
    args = {
        "name": "clean",
        "image": "busybox",
        "command": ["sh", "-c", "sleep 1; exit 0"],
        "restart_policy": "on-failure",
        "start_grace_period": 0,
    }
    assert target.volt(**args)["changed"] is True
    assert wait_for(lambda: info(target, "clean")["status"] == "stopped", timeout=20)
    record = info(target, "clean")
    assert record["exit_code"] == 0 and record["restart_count"] == 0 and record["exited"] is True, record
    assert supervision_left(target, "clean") == []
    target.volt(name="clean", state="absent")


def test_the_retry_limit_holds(target):
    token = secrets.token_hex(4)
    args = {
        "name": "flaky",
        "image": "busybox",
        # Not at once: nspawn fails a start whose payload ends before the container is up.
        "command": ["sh", "-c", f"echo attempt-{token}; sleep 1; exit 1"],
        "restart_policy": "always",
        "restart_retries": 2,
        "start_grace_period": 0,
    }
    started = target.volt(**args)
    assert started["changed"] is True and not started.get("failed"), started
    # Until the policy gave up (systemd shows a container stopped between a crash and its
    # restart, proot as running: the supervisor still runs).
    assert wait_for(lambda: info(target, "flaky")["restart_count"] == 2, timeout=30)
    assert wait_for(lambda: info(target, "flaky")["status"] == "stopped", timeout=30)
    record = info(target, "flaky")
    assert record["restart_count"] == 2 and record["exit_code"] == 1 and record["exited"] is True, record
    logs = target.volt("volt_container_info", name="flaky", log_lines=50)["containers"][0]["logs"]
    assert logs.count(f"attempt-{token}") == 3, logs  # the journal keeps earlier runs of the name
    assert supervision_left(target, "flaky") == []
    target.volt(name="flaky", state="absent")


def test_a_policy_change_is_applied_in_place(target, converge):
    base = {"name": "policy", "image": "busybox", "command": SLEEPER}
    created = converge(**base)["container"]["created_at"]
    changed = converge(**base, restart_policy="always", restart_retries=3)
    assert changed["container"]["created_at"] == created
    assert changed["container"]["config"]["restart_policy"] == "always"
    assert changed["container"]["config"]["restart_retries"] == 3
    target.volt(name="policy", state="absent")


def test_the_log_rotates_without_losing_a_line(target, converge):
    if target.backend != "proot":
        pytest.skip("systemd containers log to the journal")
    script = "i=0; while [ $i -lt 6000 ]; do i=$((i+1)); echo line-$i; done; exec sleep 4711"
    converge(name="chatty", image="busybox", command=["sh", "-c", script], log_max_size="16K", log_max_files=3)
    logs = f"{target.data_dir}/containers/chatty/logs"

    def kept():
        listing = target.sh(f"ls {logs}").split()
        return sorted(name for name in listing if name.startswith("current.log"))

    assert wait_for(lambda: "line-6000" in target.read(f"{logs}/current.log"), timeout=30)
    assert kept() == ["current.log", "current.log.1", "current.log.2"]
    sizes = [int(size) for size in target.sh(f"stat -c %s {logs}/current.log*").split()]
    assert max(sizes) <= 16384, sizes
    text = target.read(f"{logs}/current.log.2") + target.read(f"{logs}/current.log.1")
    text += target.read(f"{logs}/current.log")
    numbered = [line for line in text.splitlines() if line.startswith("line-")]
    first = int(numbered[0].split("-")[1])
    assert numbered == [f"line-{i}" for i in range(first, 6001)]  # the newest, whole and in order
    # The info module reads across the rotated files.
    tail = target.volt("volt_container_info", name="chatty", log_lines=2500)["containers"][0]["logs"]
    assert tail == numbered[-2500:], (tail[:3], numbered[-2500:][:3])
    target.volt(name="chatty", state="absent")


WEB = ["httpd", "-f", "-p", "18099", "-h", "/srv/www"]
PROBE = {"test": ["wget", "-q", "-O-", "http://127.0.0.1:18099/"], "interval": 0.5, "timeout": 2, "retries": 2}


def health(target, name):
    return info(target, name)["health"]


def proot_only(target):
    if target.backend != "proot":
        pytest.skip("systemd's health checks: tests/integration/systemd/test_health_checks.py")


def test_a_health_check_flips_to_unhealthy_and_back(target, converge):
    proot_only(target)
    result = converge(name="checked", image="busybox", command=WEB, healthcheck=PROBE)
    assert result["container"]["config"]["healthcheck"]["test"] == PROBE["test"]
    assert wait_for(lambda: health(target, "checked")["status"] == "healthy", timeout=15)
    page = target.rootfs("checked") + "/srv/www/index.html"
    target.sh(f"mv {page} {page}.away")
    assert wait_for(lambda: health(target, "checked")["status"] == "unhealthy", timeout=15)
    state = health(target, "checked")
    assert state["failing_streak"] >= 2 and state["last_exit_code"] == 1 and "404" in state["last_output"], state
    target.sh(f"mv {page}.away {page}")
    assert wait_for(lambda: health(target, "checked")["status"] == "healthy", timeout=15)
    assert health(target, "checked")["failing_streak"] == 0
    # state=healthy on a healthy container: nothing to change, nothing to wait for.
    again = target.volt(name="checked", image="busybox", command=WEB, healthcheck=PROBE, state="healthy")
    assert again["changed"] is False and again["container"]["health"]["status"] == "healthy", again
    target.volt(name="checked", state="stopped")
    assert supervision_left(target, "checked") == []
    target.volt(name="checked", state="absent")


def test_state_healthy_fails_with_the_probes_output(target):
    proot_only(target)
    never = {"test": ["sh", "-c", "echo not-today; exit 7"], "interval": 0.3, "retries": 1}
    result = target.volt(
        name="never", image="busybox", command=SLEEPER, healthcheck=never, state="healthy", healthy_wait_timeout=3
    )
    assert result.get("failed") and "not-today" in result["msg"] and "unhealthy" in result["msg"], result
    assert result["health"]["last_exit_code"] == 7
    target.volt(name="never", state="absent")
    assert supervision_left(target, "never") == []


def test_an_unhealthy_container_is_restarted_when_asked(target):
    proot_only(target)
    args = {
        "name": "revived",
        "image": "busybox",
        "command": WEB,
        "healthcheck": dict(PROBE, test=["test", "-e", "/srv/www/healthy"]),
        "restart_on_unhealthy": True,
        "restart_policy": "always",
    }
    assert target.volt(**args)["changed"] is True
    assert wait_for(lambda: info(target, "revived")["restart_count"] >= 1, timeout=20)
    target.sh(f"touch {target.rootfs('revived')}/srv/www/healthy")
    assert wait_for(lambda: (health(target, "revived") or {}).get("status") == "healthy", timeout=20)
    target.volt(name="revived", state="absent")
    assert supervision_left(target, "revived") == []
