# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How a systemd container stops and starts: the unit's stop settings follow stop_timeout, a
bridged container waits for its bridge, a tree without /usr gets one, a stop under way is
waited for, and a removed container leaves no lock file."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files, _systemd
from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records


def settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "=" in line and not line.startswith("#")]


def test_the_unit_stops_within_stop_timeout_by_signalling_every_process():
    lines = settings(_nspawn_files.render_dropin({"stop_timeout": 25}, "/r/web"))
    assert "TimeoutStopSec=25s" in lines and "KillMode=control-group" in lines
    assert "TimeoutStopSec=10s" in settings(_nspawn_files.render_dropin({}, "/r/web")), "records older than the option"
    assert "TimeoutStopSec=1ms" in settings(_nspawn_files.render_dropin({"stop_timeout": 0}, "/r/web")), (
        "0 is not infinity"
    )


def test_a_booted_container_is_shut_down_by_its_own_init():
    lines = settings(_nspawn_files.render_dropin({"boot": True, "stop_timeout": 30}, "/r/web"))
    assert "TimeoutStopSec=30s" in lines
    assert not any(line.startswith("KillMode=") for line in lines), "the template's KillMode=mixed"
    assert "KillMode=mixed" in _nspawn_files.TEMPLATE_UNIT


def test_the_stub_init_is_never_told_to_kill_or_to_send_sighup():
    text = _nspawn_files.render_nspawn({"command": ["/bin/true"]}, {"name": "web"})
    assert "ProcessTwo=yes" in text and "KillSignal=SIGTERM" in text


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_a_stop_timeout_systemd_cannot_take_is_refused(value):
    with pytest.raises(VoltError, match="stop_timeout"):
        _nspawn_files.render_dropin({"stop_timeout": value}, "/r/web")


def test_only_a_bridged_container_waits_for_its_bridge():
    bridged = _nspawn_files.render_dropin({"network": "voltbr0"}, "/r/web")
    assert "[Unit]\nStartLimitIntervalSec=0\nAfter=systemd-networkd.service\n[Service]\n" in bridged
    wait = f"ExecStartPre={_nspawn_files.WAIT_ONLINE} --interface=voltbr0:no-carrier --timeout=60"
    assert wait in settings(bridged)
    for network in ("host", "none", None):
        text = _nspawn_files.render_dropin({"network": network}, "/r/web")
        assert "ExecStartPre" not in text and "After=" not in text


def test_stop_timeout_is_kept_with_the_container_and_updated_in_place():
    assert _options.drifted({"stop_timeout": 10}, {"image": "busybox"}) == [], "older records: no change"
    assert _options.drifted({"stop_timeout": 30}, {"stop_timeout": 10}) == ["stop_timeout"]
    assert _options.change_needed(["stop_timeout"]) == "update"


class StateRunner:
    """systemctl as on a host where the unit goes through the given ActiveStates, one per show."""

    def __init__(self, states: list[str]) -> None:
        self.states = states
        self.commands: list[list[str]] = []

    def run(self, argv, check=True, **_kwargs):
        self.commands.append(list(argv))
        if argv[:2] == ["systemctl", "show"]:
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            return 0, f"ActiveState={state}\n", ""
        return 0, "", ""

    def which(self, program, extra_dirs=None):
        return None

    def systemctl(self) -> list[list[str]]:
        return [c[1:] for c in self.commands if c[0] == "systemctl" and c[1] != "show"]


@pytest.fixture
def make_backend(tmp_path, monkeypatch):
    monkeypatch.setattr(_systemd, "NSPAWN_DIR", str(tmp_path / "nspawn"))
    monkeypatch.setattr(_systemd, "UNIT_DIR", str(tmp_path / "system"))
    monkeypatch.setattr(_systemd, "_POLL_SECONDS", 0.001)
    os.makedirs(tmp_path / "nspawn")

    def make(states: list[str]) -> _systemd.SystemdBackend:
        return _systemd.SystemdBackend(StateRunner(states), str(tmp_path / "volt"), {})

    return make


def test_stop_is_systemctl_stop_and_sends_no_signal_of_its_own(make_backend):
    backend = make_backend(["active", "deactivating", "inactive"])
    backend.stop("web", 5)
    unit = _nspawn_files.unit_name("web")
    assert backend.runner.systemctl() == [["stop", "--no-block", unit]]


def test_a_stop_under_way_is_waited_for_then_ended_with_sigkill(make_backend):
    backend = make_backend(["deactivating"] * 5 + ["failed"])
    backend.stop("web", 0)
    unit = _nspawn_files.unit_name("web")
    assert backend.runner.systemctl() == [
        ["stop", "--no-block", unit],
        ["kill", "--kill-who=all", "--signal=SIGKILL", unit],
    ]


def test_remove_ends_a_pending_stop_before_the_files_go_and_clears_the_failure(make_backend):
    backend = make_backend(["deactivating", "deactivating", "failed"])
    backend._write_settings("web", {"command": ["/bin/true"]}, {})
    backend.remove("web", 10)
    commands = backend.runner.systemctl()
    unit = _nspawn_files.unit_name("web")
    assert commands.index(["stop", "--no-block", unit]) < commands.index(["reset-failed", unit])
    assert not os.path.exists(backend._settings("web")) and not os.path.exists(backend._dropin("web"))


def test_a_tree_without_usr_is_created_with_one_and_the_image_keeps_none(make_backend, tmp_path, monkeypatch):
    image = tmp_path / "image"
    os.makedirs(image / "bin")
    (image / "bin" / "true").write_text("")
    monkeypatch.setattr(
        _systemd._rootfs, "clone_tree", lambda _runner, source, dest: os.rmdir(dest) or _copy(source, dest)
    )
    backend = make_backend(["inactive"])
    config = {"rootfs": str(image), "command": ["/bin/true"]}
    backend.check_config("web", config, ["create"])  # no longer refused
    backend.create("web", config)
    assert os.path.isdir(os.path.join(backend.rootfs("web"), "usr"))
    assert not os.path.exists(image / "usr")


def _copy(source, dest) -> None:

    shutil.copytree(source, dest, symlinks=True)


def test_a_usr_symlink_in_the_image_is_left_alone(make_backend, tmp_path):
    tree = tmp_path / "tree"
    os.makedirs(tree)
    os.symlink("/somewhere", tree / "usr")
    _systemd.SystemdBackend._add_usr(str(tree))
    assert os.readlink(tree / "usr") == "/somewhere"


def test_a_discarded_lock_leaves_no_file_and_a_waiting_run_locks_the_new_one(tmp_path):
    locks = str(tmp_path / "locks")
    with _records.Lock(locks, "web") as lock:
        stale = os.open(lock.path, os.O_RDWR)
        lock.discard()
    assert not os.path.exists(os.path.join(locks, "web.lock"))
    # A run that had opened the old file before it went takes the lock on a new file instead.
    with _records.Lock(locks, "web") as again:
        assert os.path.samestat(os.fstat(again._fd), os.stat(again.path))
        assert not os.path.samestat(os.fstat(stale), os.stat(again.path))
    os.close(stale)


UNLESS_STOPPED = {"command": ["/bin/true"], "enabled": True, "restart_policy": "unless-stopped"}


def enablement(commands: list[list[str]]) -> list[str]:
    return [c[0] for c in commands if c[0] in ("enable", "disable")]


def test_unless_stopped_leaves_the_boot_when_the_module_stops_it_and_returns_at_its_start(make_backend):
    backend = make_backend(["active", "inactive"])
    backend._write_settings("web", UNLESS_STOPPED, {"started": True})
    unit = _nspawn_files.unit_name("web")
    backend.stop("web", 5)
    assert backend.runner.systemctl() == [["disable", "--quiet", unit], ["stop", "--no-block", unit]]
    assert backend._record("web")["stopped_by_volt"] is True

    backend.runner.commands.clear()
    backend.start("web")
    commands = backend.runner.systemctl()
    assert (
        commands.index(["reset-failed", unit])
        < commands.index(["start", unit])
        < commands.index(["enable", "--quiet", unit])
    )
    assert "stopped_by_volt" not in backend._record("web")


@pytest.mark.parametrize(
    "config",
    [
        dict(UNLESS_STOPPED, restart_policy="always"),
        dict(UNLESS_STOPPED, enabled=False),
    ],
)
def test_a_stop_leaves_the_boot_alone_for_other_policies_and_disabled_containers(make_backend, config):
    backend = make_backend(["active", "inactive"])
    backend._write_settings("web", config, {"started": True})
    backend.stop("web", 5)
    backend.start("web")
    assert enablement(backend.runner.systemctl()) == []


def test_an_update_keeps_a_stopped_unless_stopped_container_out_of_the_boot(make_backend):
    backend = make_backend(["inactive"])
    backend._write_settings("web", UNLESS_STOPPED, {"started": True, "stopped_by_volt": True})
    backend.update("web", UNLESS_STOPPED)
    backend.update("web", dict(UNLESS_STOPPED, restart_policy="always"))  # now it must start at boot
    assert enablement(backend.runner.systemctl()) == ["disable", "enable"]


def test_every_start_resets_the_start_limit_first(make_backend):
    backend = make_backend(["inactive"])
    backend._write_settings("web", {"command": ["/bin/true"], "restart_policy": "on-failure"}, {"started": True})
    backend.start("web")
    unit = _nspawn_files.unit_name("web")
    assert backend.runner.systemctl()[-2:] == [["reset-failed", unit], ["start", unit]]


@pytest.mark.parametrize(
    ("restarts", "config", "count"),
    [
        # systemd counts the restart its start limit refused: it never ran.
        ("3", {"restart_policy": "on-failure", "restart_retries": 2}, 2),
        ("2", {"restart_policy": "on-failure", "restart_retries": 2}, 2),
        ("1", {"restart_policy": "always", "restart_retries": 2}, 1),
        ("40", {"restart_policy": "always"}, 40),
        ("", {}, 0),
    ],
)
def test_restart_count_is_nrestarts_within_restart_retries(restarts, config, count):
    assert _systemd.SystemdBackend._restart_count({"NRestarts": restarts}, config) == count


HEALTHY = {
    "command": ["httpd", "-f"],
    "healthcheck": _options._healthcheck({"test": ["wget", "-q", "-O-", "http://127.0.0.1/"], "interval": 1}),
}


def health_paths(backend, name: str) -> list[str]:
    return [*backend._health_dropins(name), backend._health_env(name)]


def test_a_health_check_is_a_timer_the_unit_wants_with_its_drop_ins(make_backend):
    backend = make_backend(["inactive"])
    assert backend._write_settings("my-web", HEALTHY, {}) is True
    assert all(os.path.exists(path) for path in health_paths(backend, "my-web"))
    for template in (_nspawn_files.HEALTH_TIMER_TEMPLATE, _nspawn_files.HEALTH_SERVICE_TEMPLATE):
        assert os.path.exists(os.path.join(_systemd.UNIT_DIR, template))
    assert "Wants=volt-health@my\\x2dweb.timer" in open(backend._dropin("my-web")).read()
    timer, service = backend._health_dropins("my-web")
    assert timer.endswith("/volt-health@my\\x2dweb.timer.d/50-volt.conf")
    assert "OnUnitInactiveSec=1000ms" in open(timer).read()
    assert os.stat(service).st_mode & 0o777 == 0o600 and os.stat(backend._health_env("my-web")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(backend._health_env("my-web"))).st_mode & 0o777 == 0o700
    assert "export CONTAINER_NAME=my-web\n" in open(backend._health_env("my-web")).read()
    assert backend._write_settings("my-web", HEALTHY, {}) is False, "unchanged: nothing to reload"


def test_changing_the_check_rewrites_its_drop_ins_and_removing_it_stops_the_timer_first(make_backend):
    backend = make_backend(["active"])
    backend._write_settings("web", HEALTHY, {})
    slower = dict(HEALTHY, healthcheck=dict(HEALTHY["healthcheck"], interval=5.0))
    assert backend._write_settings("web", slower, {}) is True
    assert "OnActiveSec=5000ms" in open(backend._health_dropins("web")[0]).read()
    assert backend._write_settings("web", dict(HEALTHY, restart_on_unhealthy=True), {}) is True
    backend.runner.commands.clear()
    assert backend._write_settings("web", {"command": ["httpd", "-f"]}, {}) is True
    assert backend.runner.commands == [["systemctl", "stop", "volt-health@web.timer"]]
    assert not any(os.path.exists(path) for path in health_paths(backend, "web"))
    assert not os.path.exists(os.path.dirname(backend._health_dropins("web")[0]))
    assert "Wants=" not in open(backend._dropin("web")).read()
    assert backend._write_settings("web", {"command": ["httpd", "-f"]}, {}) is False


def test_restart_on_unhealthy_signals_the_payload_or_a_booted_init(make_backend):
    backend = make_backend(["inactive"])
    rendered = backend._render_health("web", dict(HEALTHY, restart_on_unhealthy=True, stop_signal="SIGQUIT"), "/")
    assert '"3" "payload"' in rendered[1]
    assert '"0" "payload"' in backend._render_health("web", HEALTHY, "/")[1]
    booted = backend._render_health("web", dict(HEALTHY, boot=True, restart_on_unhealthy=True), "/")
    assert '"37" "leader"' in booted[1]


def test_absent_removes_every_file_of_the_health_check(make_backend, monkeypatch, tmp_path):
    monkeypatch.setattr(_systemd, "HEALTH_DIR", str(tmp_path / "run-health"))
    backend = make_backend(["inactive"])
    os.makedirs(backend.rootfs("web"))
    backend._write_settings("web", HEALTHY, {})
    os.makedirs(_systemd.HEALTH_DIR)
    for suffix in ("", ".new", ".rc"):
        open(backend._health_record("web") + suffix, "w").close()
    backend.remove("web", 1)
    assert not any(os.path.exists(path) for path in health_paths(backend, "web"))
    assert os.listdir(_systemd.HEALTH_DIR) == []
    assert ["systemctl", "stop", "volt-health@web.timer", "volt-health@web.service"] in backend.runner.commands
    assert [path for path in os.listdir(_systemd.UNIT_DIR) if "@web" in path] == []


def test_health_is_reported_for_the_running_run_only(make_backend, monkeypatch, tmp_path):
    monkeypatch.setattr(_systemd, "HEALTH_DIR", str(tmp_path / "run-health"))
    os.makedirs(_systemd.HEALTH_DIR)
    backend = make_backend(["inactive"])
    leader = os.getpid()
    run = backend._run(leader)
    assert run and run.startswith(f"{leader}:")
    with open(backend._health_record("web"), "w") as handle:
        handle.write(f"healthy 0 0 {run}".ljust(63) + "\nok\n")
    assert backend._health("web", HEALTHY, leader) == {
        "status": "healthy",
        "failing_streak": 0,
        "last_exit_code": 0,
        "last_output": "ok\n",
    }
    assert backend._health("web", HEALTHY, 1)["status"] == "starting", "another run's record"
    assert backend._health("web", {"command": ["httpd"]}, leader) is None, "no check"
