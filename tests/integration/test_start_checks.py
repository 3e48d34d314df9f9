"""What a start checks and what it leaves behind, on every backend (conftest.TARGETS): a start
means running (a container that exits fails the task with its code and output, one that exits
later is restarted with a warning), a published port the host already uses fails before
anything starts, and the guest gets its host name, resolvers and mount points."""

from __future__ import annotations

import shlex

from ..polling import wait_for

BUSY_PORT = 18931


def test_a_container_that_exits_at_once_fails_with_its_code_and_output(target):
    failed = target.volt(name="quick", image="busybox", command=["sh", "-c", "echo going down >&2; exit 3"])
    assert failed.get("failed") and failed["rc"] == 3, failed
    assert "exited with code 3" in failed["msg"] and "going down" in failed["msg"]
    assert target.volt("volt_container_info", name="quick")["exists"] is False  # made by this task: gone
    assert not target.exists(target.rootfs("quick"))


def test_a_container_that_exits_later_is_seen_and_restarted_with_a_warning(target):
    args = {"name": "later", "image": "busybox", "command": ["sh", "-c", "sleep 2; exit 5"], "start_grace_period": 0.5}
    started = target.volt(**args)
    assert not started.get("failed"), started.get("msg")
    assert started["container"]["status"] == "running" and started["container"]["exit_code"] is None

    def ended():
        return target.volt("volt_container_info", name="later")["containers"][0]

    assert wait_for(lambda: ended()["status"] == "stopped", timeout=20)
    record = ended()
    assert record["exit_code"] == 5 and record["exited"] is True and record["finished_at"]
    again = target.volt(**args)
    assert again["changed"] is True and again["actions"] == ["start"]
    assert any("had exited on its own (exit code 5" in warning for warning in again.get("warnings", [])), again
    stopped = target.volt(name="later", state="stopped")
    assert stopped["container"]["exited"] is False  # stopped by Volt: not "on its own"
    target.volt(name="later", state="absent")


def test_a_published_port_in_use_fails_before_anything_starts(target):
    listen = (
        "import socket, time; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
        f"s.bind(('0.0.0.0', {BUSY_PORT})); s.listen(); time.sleep(60)"
    )
    listener = f"nohup python3 -c {shlex.quote(listen)} >/dev/null 2>&1 & echo $!"
    pid = target.sh(listener).strip()
    try:
        assert wait_for(lambda: f":{BUSY_PORT:X} " in target.sh("cat /proc/net/tcp"), timeout=10)
        args = {"name": "busy", "image": "busybox", "command": ["sleep", "1000"], "ports": [f"{BUSY_PORT}"]}
        predicted = target.volt(check=True, **args)
        failed = target.volt(**args)
        for result in (predicted, failed):
            assert result.get("failed") and f"host port {BUSY_PORT}/tcp is already in use" in result["msg"]
            assert f"(pid {pid})" in result["msg"], result["msg"]
        assert target.volt("volt_container_info", name="busy")["exists"] is False
    finally:
        target.sh(f"kill {shlex.quote(pid)}", check=False)


def test_the_guest_gets_its_hostname_resolvers_and_mount_points(target, converge):
    volume = target.data_dir + "-volume"
    target.sh(f"mkdir -p {volume}")
    script = "cat /etc/hostname; echo HOSTNAME=$HOSTNAME; hostname; exec sleep 1000"
    converge(
        name="named",
        image="busybox",
        command=["sh", "-c", script],
        hostname="volt-named",
        volumes=[f"{volume}:/mnt/new/dir"],
        **({"network": "host"} if target.backend == "systemd" else {}),
    )
    rootfs = target.rootfs("named")
    if target.backend == "proot":  # emulated: uname still says the host's name
        assert target.read(f"{rootfs}/etc/hostname") == "volt-named\n"
        assert "volt-named" in target.read(f"{rootfs}/etc/hosts").split()
        assert "nameserver" in target.read(f"{rootfs}/etc/resolv.conf")  # the image had none
        assert target.sh(f"stat -c %a {rootfs}/mnt/new/dir").strip() == "755"  # not proot's 000
        exec_env = target.volt("volt_exec", name="named", argv=["sh", "-c", "echo $HOSTNAME"])
        assert exec_env["stdout"] == "volt-named"
    else:  # systemd-nspawn: the container's own UTS name
        assert target.volt("volt_exec", name="named", argv=["hostname"])["stdout"] == "volt-named"
    target.volt(name="named", state="absent")
    target.sh(f"rm -rf {volume}")


def test_a_user_the_container_does_not_know_is_refused_where_it_must_be_real(target):
    args = {"name": "who", "image": "busybox", "command": ["sleep", "1000"], "user": "1234:1234"}
    result = target.volt(**args)
    if target.backend == "proot":  # emulated: any uid:gid
        assert not result.get("failed"), result.get("msg")
        ids = target.volt("volt_exec", name="who", argv=["sh", "-c", "id -u; id -g"])
        assert ids["stdout_lines"] == ["1234", "1234"]
        assert target.volt("volt_exec", name="who", argv=["id", "-u"], user="root")["stdout"] == "0"
    else:  # nspawn's User= takes a user of the container's /etc/passwd (busybox has none)
        assert result.get("failed") and "uid 1234 is not in the container's /etc/passwd" in result["msg"]
        assert target.volt("volt_container_info", name="who")["exists"] is False
    target.volt(name="who", state="absent")
