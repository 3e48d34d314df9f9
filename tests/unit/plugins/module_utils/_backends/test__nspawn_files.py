from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 5))


@pytest.mark.parametrize("name", ["web", "web-1", "a.b_c", ".hidden", "a b", "ü", "x:y"])
def test_unit_escape_matches_systemd_escape(name):
    expected = subprocess.run(["systemd-escape", "--", name], capture_output=True, text=True, check=True).stdout
    assert _nspawn_files.unit_escape(name) == expected.strip()


def test_unit_name():
    assert _nspawn_files.unit_name("web-1") == "volt-container@web\\x2d1.service"


def test_nspawn_settings_for_a_command_container():
    config = {
        "command": ["/bin/sh", "-c", 'echo "hi there"; sleep 5'],
        "env": {"B": "2", "A": "x y"},
        "workdir": "/srv",
        "volumes": ["/data:/data", "/etc/ssl:/etc/ssl:ro"],
        "network": "voltbr0",
        "ports": ["8080:80"],
    }
    text = _nspawn_files.render_nspawn(config, {"name": "web", "config": config})
    assert text.splitlines()[1:] == [
        "[Exec]",
        "ProcessTwo=yes",
        "KillSignal=SIGTERM",
        'Parameters=/bin/sh -c "echo "\'"\'"hi there"\'"\'"; sleep 5"',
        'Environment="A=x y"',  # one word: systemd splits this setting on whitespace
        "Environment=B=2",
        "Environment=CONTAINER_NAME=web",
        "WorkingDirectory=/srv",
        "[Files]",
        "Bind=/data:/data",
        "BindReadOnly=/etc/ssl:/etc/ssl",
        "[Network]",
        "Bridge=voltbr0",
        "Port=tcp:8080:80",
    ]
    assert _nspawn_files.parse_record(text) == {"name": "web", "config": config}


@pytest.mark.parametrize(
    ("network", "line"), [(None, "VirtualEthernet=no"), ("host", "VirtualEthernet=no"), ("none", "Private=yes")]
)
def test_nspawn_networks(network, line):
    text = _nspawn_files.render_nspawn({"boot": True, "network": network}, {})
    assert "Boot=yes" in text and line in text and "ProcessTwo" not in text


def test_foreign_nspawn_file_has_no_record():
    assert _nspawn_files.parse_record("[Exec]\nBoot=yes\n") is None


def test_dropin_holds_rootfs_limits_and_restart_policy():
    text = _nspawn_files.render_dropin(
        {"memory": 64 * 1024 * 1024, "cpus": 1.5, "restart_policy": "on-failure"}, "/r/web"
    )
    assert text.splitlines()[1:] == [
        "[Unit]",
        "StartLimitIntervalSec=0",
        "[Service]",
        'Environment="VOLT_ROOTFS=/r/web"',
        "MemoryMax=67108864",
        "CPUQuota=150%",
        "Restart=on-failure",
        "RestartSec=100ms",
        "TimeoutStopSec=10s",
        "KillMode=control-group",
    ]
    assert "Restart=no" in _nspawn_files.render_dropin({}, "/r/web")


@pytest.mark.parametrize(
    ("policy", "restart"),
    [(None, "no"), ("no", "no"), ("on-failure", "on-failure"), ("always", "always"), ("unless-stopped", "always")],
)
def test_each_restart_policy_is_a_restart_setting(policy, restart):
    lines = _nspawn_files.render_dropin({"restart_policy": policy}, "/r/web").splitlines()
    assert f"Restart={restart}" in lines and "RestartSec=100ms" in lines


@pytest.mark.parametrize(
    ("config", "limit"),
    [
        (
            {"restart_policy": "on-failure", "restart_retries": 2},
            ["StartLimitIntervalSec=infinity", "StartLimitBurst=3"],
        ),
        (
            {"restart_policy": "unless-stopped", "restart_retries": 1},
            ["StartLimitIntervalSec=infinity", "StartLimitBurst=2"],
        ),
        # No limit: systemd's default (5 starts in 10 s) would end a crash loop.
        ({"restart_policy": "always", "restart_retries": 0}, ["StartLimitIntervalSec=0"]),
        ({"restart_policy": "always"}, ["StartLimitIntervalSec=0"]),
        # Nothing restarts: a limit would only refuse an administrator's starts.
        ({"restart_policy": "no", "restart_retries": 2}, ["StartLimitIntervalSec=0"]),
    ],
)
def test_restart_retries_is_the_start_limit_of_the_unit_section(config, limit):
    text = _nspawn_files.render_dropin(config, "/r/web")
    unit = text.split("[Unit]\n", 1)[1].split("[Service]", 1)[0]
    assert unit.splitlines() == limit
    assert _nspawn_files.restart_limit(config) == (int(limit[1].split("=")[1]) - 1 if len(limit) == 2 else 0)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("retries", [0, 3])
def test_a_dropin_with_a_restart_limit_passes_systemd_analyze_verify(tmp_path, retries):
    unit = tmp_path / _nspawn_files.TEMPLATE_NAME
    unit.write_text(_nspawn_files.TEMPLATE_UNIT.replace("--directory=${VOLT_ROOTFS}", "--directory=/r/web"))
    (tmp_path / "volt-container@web.service").symlink_to(unit)
    dropin = tmp_path / "volt-container@web.service.d"
    dropin.mkdir()
    config = {"restart_policy": "unless-stopped", "restart_retries": retries, "network": "voltbr0"}
    (dropin / "50-volt.conf").write_text(_nspawn_files.render_dropin(config, "/r/web"))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(tmp_path / "volt-container@web.service")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Unknown key" not in result.stderr and "Failed to parse" not in result.stderr, result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_template_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / _nspawn_files.TEMPLATE_NAME
    unit.write_text(_nspawn_files.TEMPLATE_UNIT)
    instance = tmp_path / "volt-container@web.service"
    instance.symlink_to(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(instance)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and "volt-container" not in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [("x", "x"), ("a b", '"a b"'), ("it's", '"it\'s"'), ('say "hi"', '"say "\'"\'"hi"\'"\''), ("", '""')],
)
def test_parameters_quoting(arg, quoted):
    assert _nspawn_files.quote(arg) == quoted


def test_the_role_installs_the_same_template_unit():
    role_copy = os.path.join(TOP, "roles", "systemd_host", "files", _nspawn_files.TEMPLATE_NAME)
    with open(role_copy, encoding="utf-8") as handle:
        assert handle.read() == _nspawn_files.TEMPLATE_UNIT, (
            "regenerate the role's copy from _nspawn_files.TEMPLATE_UNIT"
        )


def test_an_image_config_reaches_the_nspawn_settings():
    config = {
        "image_config": {
            "entrypoint": ["/docker-entrypoint.sh"],
            "cmd": ["nginx", "-g", "daemon off;"],
            "env": {"PATH": "/usr/sbin:/usr/bin", "A": "image"},
            "workdir": "/srv",
            "stop_signal": "SIGQUIT",
        },
        "env": {"A": "task"},
        "hostname": "web1",
    }
    lines = _nspawn_files.render_nspawn(config, {"name": "web", "user": "nginx"}).splitlines()
    assert 'Parameters=/docker-entrypoint.sh nginx -g "daemon off;"' in lines
    assert [line for line in lines if line.startswith("Environment=")] == [
        "Environment=A=task",
        "Environment=CONTAINER_NAME=web",
        "Environment=PATH=/usr/sbin:/usr/bin",
    ]
    assert "WorkingDirectory=/srv" in lines and "User=nginx" in lines and "Hostname=web1" in lines


def test_a_booted_container_never_gets_the_image_program_as_init_arguments():
    config = {"boot": True, "image_config": {"cmd": ["nginx"]}}
    assert not any(line.startswith("Parameters=") for line in _nspawn_files.render_nspawn(config, {}).splitlines())


def test_the_stop_signal_goes_to_the_main_process_and_each_run_end_is_recorded():
    text = _nspawn_files.render_dropin({"stop_signal": "SIGQUIT"}, "/r/web", None, "/run/volt/exit/web")
    stop = next(line for line in text.splitlines() if line.startswith("ExecStop="))
    assert stop.startswith('ExecStop="/bin/sh" "-c" ') and stop.endswith('"volt-stop" "3"')
    assert "$$MAINPID" in stop  # the shell's $MAINPID, not a systemd specifier or variable
    post = next(line for line in text.splitlines() if line.startswith("ExecStopPost="))
    assert post.endswith('"volt-exit" "/run/volt/exit/web"')
    assert "ExecStop=" not in _nspawn_files.render_dropin({}, "/r/web")  # SIGTERM: the unit's own


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("success exited 0\n", 0),
        ("exit-code exited 3\n", 3),
        ("signal killed TERM\n", 143),
        ("core-dump dumped SEGV\n", 139),
        ("garbage\n", None),
        ("signal killed NOPE\n", None),
    ],
)
def test_exit_records_read_as_a_shell_would_report(line, code):
    assert _nspawn_files.parse_exit_record(line) == code


@pytest.mark.skipif(shutil.which("sh") is None, reason="no sh")
def test_the_exit_record_script_writes_what_parse_reads(tmp_path):
    target = str(tmp_path / "exit" / "web")
    env = {"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "3", "PATH": "/usr/bin:/bin"}
    subprocess.run(["/bin/sh", "-c", _nspawn_files.EXIT_RECORD, "volt-exit", target], env=env, check=True)
    assert _nspawn_files.parse_exit_record(open(target).read()) == 3
