# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The health check's systemd files, and the probe script itself run here with stand-ins for
machinectl and nsenter: starting, retries, start_period, a new run, restart_on_unhealthy."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files
from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

CHECK = _options._healthcheck({"test": ["wget", "-q", "-O-", "http://127.0.0.1:8099/"], "interval": 1, "timeout": 2})


def test_the_timer_probes_one_interval_after_the_start_and_after_each_probe():
    text = _nspawn_files.render_health_timer(dict(CHECK, interval=30.0))
    assert text.splitlines()[1:] == [
        "[Timer]",
        "OnActiveSec=30000ms",
        "OnUnitInactiveSec=30000ms",
        "AccuracySec=1000ms",
    ]
    assert "AccuracySec=5ms" in _nspawn_files.render_health_timer(dict(CHECK, interval=0.1))


def test_the_templates_bind_the_timer_to_the_container_and_never_start_it():
    assert "BindsTo=volt-container@%i.service" in _nspawn_files.HEALTH_TIMER_UNIT
    service = _nspawn_files.HEALTH_SERVICE_UNIT
    assert "PartOf=volt-container@%i.service" in service and "BindsTo" not in service and "Requires" not in service
    assert "StartLimitIntervalSec=0" in service and "Type=oneshot" in service


def test_the_container_wants_its_timer():
    text = _nspawn_files.render_dropin({}, "/r/web", None, None, _nspawn_files.health_timer_name("my-web"))
    assert "[Unit]\nStartLimitIntervalSec=0\nWants=volt-health@my\\x2dweb.timer\n[Service]" in text
    assert "Wants=" not in _nspawn_files.render_dropin({}, "/r/web")


def render(check=None, probe=None, **extra):
    check = check or CHECK
    settings = {
        "record": "/run/volt/health/web",
        "env_file": "/var/lib/volt/health/web.env",
        "ids": (0, 0),
        "signal": 0,
        "target": "payload",
        "hz": 100,
        "tools": {tool: f"/usr/bin/{tool}" for tool in _nspawn_files.HEALTH_TOOLS},
        **extra,
    }
    return _nspawn_files.render_health_service("web", check, probe or check["test"], **settings)


def test_the_service_runs_the_probe_script_without_an_environment():
    lines = render().splitlines()
    assert lines[1] == "[Service]" and lines[3] == "TimeoutStartSec=32s"
    assert lines[2].startswith('ExecStart="/usr/bin/env" "-i" "/bin/sh" "-c" "set -f; ')
    assert lines[2].endswith('"0:0" "--" "wget" "-q" "-O-" "http://127.0.0.1:8099/"')


@pytest.mark.parametrize("word", ["a\nExecStartPre=/bin/id", "tab\there", "bell\a"])
def test_a_test_systemd_cannot_carry_is_refused(word):
    with pytest.raises(VoltError, match="healthcheck test"):
        render(dict(CHECK, test=["echo", word]))


def test_the_probe_changes_into_the_workdir_inside_the_container():
    assert _nspawn_files.health_probe(CHECK, "/") == CHECK["test"]
    probe = _nspawn_files.health_probe(CHECK, "/srv")
    assert probe[:2] == ["/bin/sh", "-c"] and probe[3:] == ["volt-health", "/srv", *CHECK["test"]]


def test_the_environment_file_is_quoted_for_sh_and_refuses_names_that_would_be_code():
    text = _nspawn_files.render_health_env({"B": "it's $HOME `id`", "A": "1"})
    assert text == "export A=1\nexport B='it'\"'\"'s $HOME `id`'\n"
    out = subprocess.run(["sh", "-c", text + 'printf %s "$B"'], capture_output=True, text=True, check=True).stdout
    assert out == "it's $HOME `id`"
    with pytest.raises(VoltError, match="not a valid variable name"):
        _nspawn_files.render_health_env({"A;id": "x"})


def test_a_record_counts_for_its_own_run_only():
    data = b"unhealthy 3 1 42:1000" + b" " * 40 + b"\nwget: server returned error: HTTP/1.1 404 Not Found\n"
    health = _nspawn_files.parse_health_record(data, "42:1000")
    assert health == {
        "status": "unhealthy",
        "failing_streak": 3,
        "last_exit_code": 1,
        "last_output": "wget: server returned error: HTTP/1.1 404 Not Found\n",
    }
    assert _nspawn_files.parse_health_record(data, "42:999") is None, "an earlier run's"
    assert _nspawn_files.parse_health_record(data, None) is None
    assert _nspawn_files.parse_health_record(b"starting 0 -1 42:1000\n", "42:1000")["last_exit_code"] is None
    assert _nspawn_files.parse_health_record(b"garbage\n", "42:1000") is None


# -- the probe script, run here --------------------------------------------------------------
NEEDED = ("env", "timeout", "mv", "head", "cat")


@pytest.fixture
def probe(tmp_path):
    """run(check, probe argv, **settings) runs the service's command once against a stand-in
    container (a sleeping process as its leader); returns the record's (first line, output)."""
    if sys.platform != "linux" or not all(shutil.which(tool) for tool in NEEDED):
        pytest.skip("needs Linux /proc and coreutils")
    leader = subprocess.Popen(["sleep", "60"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "machinectl").write_text(f"#!/bin/sh\necho {leader.pid}\n")
    # nsenter: drop its options, run the command here.
    (bin_dir / "nsenter").write_text('#!/bin/sh\nwhile [ "$1" != -- ]; do shift; done\nshift\nexec "$@"\n')
    for tool in ("machinectl", "nsenter"):
        os.chmod(bin_dir / tool, 0o755)
    tools = {tool: shutil.which(tool) for tool in NEEDED}
    tools.update(machinectl=str(bin_dir / "machinectl"), nsenter=str(bin_dir / "nsenter"))
    record = tmp_path / "record"
    env_file = tmp_path / "env"
    env_file.write_text(_nspawn_files.render_health_env({"GREETING": "hi there", "PATH": os.environ["PATH"]}))

    def run(check: dict, argv: list[str], **settings) -> tuple[str, str]:
        text = render(check, argv, record=str(record), env_file=str(env_file), tools=tools, **settings)
        line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
        words = [
            re.sub(r"\\(.)", r"\1", word).replace("$$", "$").replace("%%", "%")
            for word in re.findall(r'"((?:[^"\\]|\\.)*)"', line)
        ]
        subprocess.run(words, check=True, timeout=30)
        first, _newline, output = record.read_bytes().partition(b"\n")
        assert not os.path.exists(f"{record}.new")
        return " ".join(first.decode().split()[:3]), output.decode()

    run.leader = leader
    time.sleep(0.3)  # older than the interval below: its first probe runs
    yield run
    leader.kill()
    leader.wait()


FAST = dict(CHECK, interval=0.1, timeout=5.0, retries=2)


def test_failures_in_a_row_make_it_unhealthy_and_a_pass_healthy(probe, tmp_path):
    flag = tmp_path / "flag"
    argv = ["sh", "-c", f'echo "$GREETING"; test -e {flag}']
    assert probe(FAST, argv) == ("starting 1 1", "hi there\n")
    assert probe(FAST, argv) == ("unhealthy 2 1", "hi there\n")
    assert probe(FAST, argv) == ("unhealthy 3 1", "hi there\n")
    flag.touch()
    assert probe(FAST, argv) == ("healthy 0 0", "hi there\n")
    flag.unlink()
    assert probe(FAST, argv)[0] == "healthy 1 1", "one failure of 2"


def test_failures_in_the_start_period_do_not_count_while_starting(probe):
    assert probe(dict(FAST, start_period=60.0), ["false"])[0] == "starting 0 1"
    assert probe(dict(FAST, start_period=60.0), ["true"])[0] == "healthy 0 0"
    assert probe(dict(FAST, start_period=60.0), ["false"])[0] == "healthy 1 1", "healthy once: they count"


def test_the_output_is_cut_at_4_kib_and_the_exit_code_stays_the_probes(probe):
    status, output = probe(FAST, ["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x; exit 3"])
    assert status == "starting 1 3" and output == "x" * 4096


def test_a_probe_past_its_timeout_is_killed_and_fails(probe):
    started = time.monotonic()
    assert probe(dict(FAST, timeout=0.5), ["sleep", "30"])[0] == "starting 1 137"
    assert time.monotonic() - started < 10


def test_a_young_run_is_probed_one_interval_after_its_start(probe):
    assert probe(dict(FAST, interval=3600.0), ["true"]) == ("starting 0 -1", "")


def test_restart_on_unhealthy_signals_once_on_becoming_unhealthy(probe):
    settings = {"signal": 15, "target": "leader"}
    probe(FAST, ["false"], **settings)
    assert probe.leader.poll() is None, "not unhealthy yet"
    probe(FAST, ["false"], **settings)
    assert probe.leader.wait(timeout=10) == -15
