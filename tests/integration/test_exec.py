"""volt_exec against every backend (conftest.TARGETS): output round trips, stdin, env, chdir,
user, timeouts that leave no process behind, creates/removes in check and normal mode, and
clear failures. Process checks look at the host's real process table."""

from __future__ import annotations

import random
import re

import pytest

from ..polling import wait_for

SLEEPER = ["/bin/sh", "-c", "exec sleep 1000"]


@pytest.fixture
def running(target):
    started = target.volt(name="box", image="busybox", command=SLEEPER, state="started")
    assert started["container"]["status"] == "running", started
    # A user for `user: app`, in the container's own /etc/passwd.
    target.sh(f"echo 'app:x:1234:1234::/home/app:/bin/sh' >> {target.rootfs('box')}/etc/passwd")
    return target


def run(target, check=False, **args):
    return target.volt("volt_exec", check=check, name="box", **args)


def test_output_round_trip_with_unicode_and_invalid_bytes(running):
    script = "printf 'h\\303\\251llo \\342\\234\\223\\n'; printf '\\377\\376raw\\n'; echo 'to stderr ✗' >&2; exit 3"
    result = run(running, argv=["/bin/sh", "-c", script])
    assert result["failed"] and result["rc"] == 3 and result["msg"] == "non-zero return code 3"
    assert result["stdout_lines"] == ["héllo ✓", "\ufffd\ufffdraw"]
    assert result["stderr"] == "to stderr ✗" and result["changed"] is True
    assert result["cmd"] == ["/bin/sh", "-c", script] and result["timed_out"] is False
    assert re.fullmatch(r"\d+:\d\d:\d\d\.\d+", result["delta"])


def test_stdin_env_chdir_and_cmd_split_without_a_shell(running):
    fed = run(running, cmd="cat", stdin="line one\nline two")
    assert fed["rc"] == 0 and fed["stdout_lines"] == ["line one", "line two"]
    env = run(running, argv=["/bin/sh", "-c", 'echo "$GREETING|$CONTAINER_NAME|$HOME"; pwd'], env={"GREETING": "hi"})
    assert env["stdout_lines"] == ["hi|box|/root", "/"]
    moved = run(running, cmd="pwd", chdir="/etc")
    assert moved["stdout"] == "/etc"
    literal = run(running, cmd="echo $HOME 'a b' ; ls")  # no shell: every word is an argument
    assert literal["stdout"] == "$HOME a b ; ls"


def test_user_by_name_and_by_number(running):
    named = run(running, argv=["/bin/sh", "-c", 'id -u; id -g; echo "$HOME"'], user="app")
    assert named["stdout_lines"] == ["1234", "1234", "/home/app"]
    numeric = run(running, argv=["/bin/sh", "-c", "id -u; id -g"], user="4321:99")
    assert numeric["stdout_lines"] == ["4321", "99"]
    unknown = run(running, cmd="id", user="nobody-here")
    assert unknown["failed"] and "nobody-here" in unknown["msg"] and "/etc/passwd" in unknown["msg"]


def sleepers(target, marker):
    """Processes whose command line starts with marker (not those that only mention it, such as
    the proot that runs a shell command starting them)."""
    lines = (line.strip().split(None, 1) for line in target.sh("ps -eo pid,args").splitlines())
    return [" ".join(fields) for fields in lines if len(fields) == 2 and fields[1].startswith(marker)]


def test_timeout_ends_every_process_it_started(running):
    marker = "31337"
    script = f"sleep {marker} & sleep {marker} & exec sleep {marker}"
    result = run(running, argv=["/bin/sh", "-c", script], timeout=2)
    assert result["failed"] and result["timed_out"] is True and "longer than 2 s" in result["msg"]
    assert result["rc"] != 0
    assert wait_for(lambda: not sleepers(running, f"sleep {marker}"), timeout=10), sleepers(running, marker)
    # The container itself keeps running.
    assert running.volt("volt_container_info", name="box")["containers"][0]["status"] == "running"


def test_background_processes_outlive_the_command_until_the_container_stops(running):
    """As docker exec: the call returns when the command ends; what it started in the
    background, a setsid double-forked daemon too, keeps running in the container (proot: still
    traced, so its paths are the container's) until the container stops. A timeout ends it all."""
    marker = str(random.randint(40000, 49999))  # not one a failed earlier run left behind
    done = run(running, argv=["/bin/sh", "-c", f"(setsid sleep {marker} &); echo ran; exit 3"], timeout=60)
    assert done["rc"] == 3 and done["stdout"] == "ran", done
    assert len(sleepers(running, f"sleep {marker}")) == 1
    (pid,) = [line.split()[0] for line in sleepers(running, f"sleep {marker}")]
    if running.backend == "proot":
        tracer = running.sh(f"awk '/^TracerPid/ {{print $2}}' /proc/{pid}/status").strip()
        assert tracer != "0", "the background process is not traced by proot"
    else:
        assert "volt-exec-box-" in running.sh(f"cat /proc/{pid}/cgroup")  # the scope bound to the unit
    background = f"sleep {marker}"
    marker = str(int(marker) + 10000)
    timed = run(running, argv=["/bin/sh", "-c", f"(setsid sleep {marker} &); exec sleep 100"], timeout=2)
    assert timed["failed"] and timed["timed_out"] is True
    assert wait_for(lambda: not sleepers(running, f"sleep {marker}"), timeout=10), sleepers(running, marker)
    assert sleepers(running, background), "a timeout ended another command's background process"
    running.volt(name="box", state="stopped")
    assert wait_for(lambda: not sleepers(running, background), timeout=10), sleepers(running, background)


def test_creates_and_removes_decide_in_check_mode_too(running):
    touch = {"argv": ["/bin/touch", "/root/done"], "creates": "/root/done"}
    before = running.snapshot()
    predicted = run(running, check=True, **touch)
    assert predicted["changed"] is True and predicted["rc"] is None
    assert running.snapshot() == before and not running.exists(f"{running.rootfs('box')}/root/done")
    applied = run(running, **touch)
    assert applied["changed"] is True and applied["rc"] == 0
    assert running.exists(f"{running.rootfs('box')}/root/done")
    for check in (True, False):
        skipped = run(running, check=check, **touch)
        assert skipped["changed"] is False and skipped["stdout"] == "skipped, since /root/done exists"

    remove = {"argv": ["/bin/rm", "done"], "chdir": "/root", "removes": "done"}
    assert run(running, check=True, **remove)["changed"] is True
    assert run(running, **remove)["changed"] is True
    assert not running.exists(f"{running.rootfs('box')}/root/done")
    for check in (True, False):
        assert run(running, check=check, **remove)["changed"] is False


def test_clear_failures(target):
    missing = target.volt("volt_exec", name="ghost", cmd="true")
    assert missing["failed"] and missing["msg"] == (
        f"container ghost does not exist in {target.data_dir} (backend {target.backend})"
    )
    bad = target.volt("volt_exec", name="../etc", cmd="true")
    assert bad["failed"] and "'../etc'" in bad["msg"]
    target.volt(name="cold", image="busybox", command=SLEEPER, state="present")
    cold = target.volt("volt_exec", name="cold", cmd="true")
    assert cold["failed"] and "container cold is not running (status: created)" in cold["msg"]
    neither = target.volt("volt_exec", name="cold")
    assert neither["failed"] and "argv" in neither["msg"] and "cmd" in neither["msg"]


def test_missing_chdir_or_bad_values_fail_by_name(running):
    """proot used to run the command in / when chdir did not exist; NUL in env crashed."""
    missing = run(running, cmd="pwd", chdir="/nowhere")
    assert missing["failed"] and missing["msg"] == "chdir '/nowhere' is not a directory in container box"
    nul = run(running, cmd="true", env={"A": "x\0y"})
    assert nul["failed"] and "env value for A cannot contain a NUL" in nul["msg"]
    control = run(running, cmd="pwd", chdir="/etc\n/x")
    assert control["failed"] and "chdir must not contain control characters" in control["msg"]
