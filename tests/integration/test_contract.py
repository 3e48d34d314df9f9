"""The contract every backend keeps, run against each one in turn (see conftest.TARGETS): proot
5.1.0 and 5.4.0 on this machine, systemd-nspawn on a systemd host of the test fleet. Assertions
look at the host's real state (processes, files) through the target, not only at the results."""

from __future__ import annotations

import base64
import time

from ..polling import wait_for

SLEEPER = ["/bin/sh", "-c", "echo started; exec sleep 1000"]


def test_every_state_transition(target, converge):
    base = {"name": "web", "image": "busybox", "command": SLEEPER}
    rootfs = target.rootfs("web")

    created = converge(state="present", **base)
    assert created["actions"] == ["create"] and created["container"]["status"] == "created"
    assert created["diff"]["before"] == {"state": "absent"}
    assert target.exists(f"{rootfs}/bin/busybox")

    started = converge(state="started", **base)
    assert started["actions"] == ["start"]
    pid = started["container"]["pid"]
    assert target.alive(pid) and wait_for(lambda: target.descendants(pid))
    assert started["container"]["os"] == "Volt test (busybox)"
    assert started["container"]["command"] == SLEEPER
    assert started["container"]["backend"] == target.backend

    stopped = converge(state="stopped", **base)
    assert stopped["actions"] == ["stop"] and stopped["container"]["status"] == "stopped"
    assert wait_for(lambda: not target.alive(pid))

    restarted = converge(state="restarted", **base)
    assert restarted["actions"] == ["start"]
    first = restarted["container"]["pid"]
    restarted = converge(state="restarted", **base)
    assert restarted["actions"] == ["stop", "start"]
    assert restarted["container"]["pid"] != first and target.alive(restarted["container"]["pid"])

    present = target.volt(state="present", **base)
    assert present["changed"] is False and present["container"]["status"] == "running"

    removed = converge(state="absent", name="web")
    assert removed["actions"] == ["remove"] and removed["container"] == {}
    assert wait_for(lambda: not target.alive(restarted["container"]["pid"]))
    assert not target.exists(rootfs)


def test_stopped_creates_without_starting(target, converge):
    result = converge(name="cold", image="busybox", command=SLEEPER, state="stopped")
    assert result["actions"] == ["create"] and result["container"]["status"] == "created"
    assert result["container"]["pid"] is None


def test_drift_recreates_and_names_the_options(target, converge):
    command = ["/bin/sh", "-c", "env > /root/env.txt; pwd > /root/pwd.txt; exec sleep 1000"]
    base = {"name": "drift", "image": "busybox", "command": command}
    rootfs = target.rootfs("drift")
    first = converge(env={"COLOR": "blue"}, **base)
    target.sh(f"touch {rootfs}/marker")

    second = converge(env={"COLOR": "red"}, workdir="/srv", **base)
    assert second["drifted"] == ["env", "workdir"]
    assert second["actions"] == ["remove", "create", "start"]
    assert second["diff"]["before"]["config"]["env"] == {"COLOR": "blue"}
    assert second["diff"]["after"]["config"]["env"] == {"COLOR": "red"}
    assert wait_for(lambda: not target.alive(first["container"]["pid"]))
    assert target.alive(second["container"]["pid"])
    assert not target.exists(f"{rootfs}/marker"), "a recreated container gets a fresh rootfs"
    assert wait_for(lambda: "COLOR=red" in target.read(f"{rootfs}/root/env.txt"))
    env = dict(line.split("=", 1) for line in target.read(f"{rootfs}/root/env.txt").splitlines() if "=" in line)
    assert env["CONTAINER_NAME"] == "drift"
    assert not [key for key in env if key.startswith("ANSIBLE")], "nothing of the module leaks in"
    assert target.read(f"{rootfs}/root/pwd.txt").strip() == "/srv"

    assert target.volt(name="drift")["changed"] is False, "options left out are not compared"
    forced = target.volt(name="drift", recreate=True)
    assert forced["changed"] is True and forced["drifted"] == [] and forced["actions"][:2] == ["remove", "create"]
    assert forced["container"]["config"]["env"] == {"COLOR": "red"}


def test_kill_9_of_the_payload_is_seen_and_repaired(target, converge):
    base = {"name": "victim", "image": "busybox", "command": SLEEPER}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: target.descendants(pid))
    target.sh(f"kill -9 {' '.join(map(str, target.descendants(pid)))}")
    assert wait_for(lambda: not target.alive(pid)), "the container ends with its payload"
    info = target.volt("volt_container_info", name="victim")
    assert info["containers"][0]["status"] == "stopped"
    back = converge(**base)
    assert back["actions"] == ["start"] and target.alive(back["container"]["pid"])


def test_container_ignoring_sigterm_stops_within_timeout(target, converge):
    stubborn = ["/bin/sh", "-c", "trap '' TERM; sh -c \"trap '' TERM; sleep 1000\" & while :; do sleep 1; done"]
    base = {"name": "stubborn", "image": "busybox", "command": stubborn, "stop_timeout": 2}
    pid = converge(**base)["container"]["pid"]
    assert wait_for(lambda: len(target.descendants(pid)) >= 2)
    guests = target.descendants(pid)
    begin = time.monotonic()
    target.volt(name="stubborn")  # a no-op run: what one call costs here, without stopping
    overhead = time.monotonic() - begin
    begin = time.monotonic()
    result = target.volt(state="stopped", **base)
    elapsed = time.monotonic() - begin - overhead
    assert result["actions"] == ["stop"]
    # Well under the default stop_timeout (10 s): slack for a loaded machine, not for waiting it out.
    assert elapsed < 2 + 3, f"stop took {elapsed:.2f}s beyond a module call"
    assert not target.alive(pid) and not any(target.alive(guest) for guest in guests)


def test_ls_ps_and_writes_work_in_the_guest(target, converge):
    probe = (
        "ls / > /root/ls.txt; ps > /root/ps.txt; echo written > /root/w.txt; "
        "ls -l /bin/busybox > /root/ll.txt; exec sleep 1000"
    )
    converge(name="shell", image="busybox", command=["/bin/sh", "-c", probe])
    root = target.rootfs("shell")
    assert wait_for(lambda: target.read(f"{root}/root/ll.txt"))
    assert {"bin", "etc", "root", "srv"} <= set(target.read(f"{root}/root/ls.txt").split())
    assert "sleep" in target.read(f"{root}/root/ps.txt") or "sh -c" in target.read(f"{root}/root/ps.txt")
    assert target.read(f"{root}/root/w.txt") == "written\n"
    assert "?" not in target.read(f"{root}/root/ll.txt").split()[0]


def test_volumes_bind_host_directories(target, converge):
    shared = f"{target.data_dir}/shared"
    target.sh(f"mkdir -p {shared} && echo 'from host' > {shared}/in.txt")
    command = ["/bin/sh", "-c", "cat /mnt/shared/in.txt > /mnt/shared/out.txt; exec sleep 1000"]
    converge(name="vol", image="busybox", command=command, volumes=[f"{shared}:/mnt/shared"])
    assert wait_for(lambda: target.read(f"{shared}/out.txt") == "from host\n")


def test_entrypoint_is_detected_when_no_command(target, converge):
    source = f"{target.data_dir}/with-init"
    target.sh(
        f"cp -a {target.data_dir}/images/busybox {source} && "
        f"printf '#!/bin/sh\\necho init ran > /root/init.txt\\nexec sleep 1000\\n' > {source}/init && "
        f"chmod 755 {source}/init"
    )
    result = converge(name="auto", rootfs=source)
    assert result["container"]["command"] == ["/init"]
    assert wait_for(lambda: target.read(f"{target.rootfs('auto')}/root/init.txt") == "init ran\n")


def test_bad_input_fails_clearly_and_writes_nothing(target):
    cases = [
        ({"name": "../escape", "image": "busybox"}, "invalid container name '../escape'"),
        ({"name": "a" * 65, "image": "busybox"}, "invalid container name"),
        ({"name": "web\nx", "image": "busybox"}, "invalid container name"),
        ({"name": "ok", "rootfs": "relative/dir"}, "rootfs"),
        ({"name": "ok", "rootfs": "/nonexistent/rootfs"}, "/nonexistent/rootfs is not a directory"),
        ({"name": "ok", "image": "missing"}, "image 'missing' is not in the image store"),
        ({"name": "ok", "image": "../etc"}, "invalid image name '../etc'"),
        ({"name": "ok"}, "give image or rootfs"),
        ({"name": "ok", "image": "busybox", "env": {"X": True}}, "env value for X"),
        ({"name": "ok", "image": "busybox", "ports": ["99999"]}, "'99999'"),
        ({"name": "ok", "image": "busybox", "stop_timeout": -1}, "stop_timeout must be 0 or more"),
        ({"name": "ok", "image": "busybox", "command": ["/no/such/program"]}, "'/no/such/program' is not an"),
        ({"name": "ok", "image": "busybox", "command": "nosuchprog --x"}, "'nosuchprog' is not an"),
    ]
    before = target.snapshot()
    for args, message in cases:
        result = target.volt(**args)
        assert result.get("failed"), args
        assert message in result["msg"], (args, result["msg"])
    assert target.snapshot() == before, "a failed run wrote something"


def test_info_lists_and_tails_logs(target):
    target.volt(name="one", image="busybox", command=SLEEPER)
    target.volt(name="two", image="busybox", command=SLEEPER, state="stopped")
    info = target.volt("volt_container_info", log_lines=3)
    assert [c["name"] for c in info["containers"]] == ["one", "two"]
    assert info["containers"][0]["status"] == "running" and info["containers"][1]["status"] == "created"
    assert info["containers"][1]["logs"] == []
    assert wait_for(
        lambda: "started" in target.volt("volt_container_info", name="one", log_lines=5)["containers"][0]["logs"],
        timeout=10,
    )
    assert target.volt("volt_container_info", name="nope")["exists"] is False
    assert target.volt("volt_container_info", name="bad/name").get("failed")


def test_command_arguments_arrive_intact(target, converge):
    words = ["a b", "it's", 'say "hi"', "back\\slash", "$HOME", "*"]
    script = 'for word in "$@"; do echo "[$word]"; done > /root/args.txt; exec sleep 1000'
    converge(name="words", image="busybox", command=["/bin/sh", "-c", script, "sh", *words])
    out = f"{target.rootfs('words')}/root/args.txt"
    assert wait_for(lambda: target.read(out))
    assert target.read(out).splitlines() == [f"[{word}]" for word in words]


def test_secret_env_reaches_the_guest_and_no_record(target, converge):
    """secret_env on every backend: the payload sees the value; on the host only the private
    secrets file (and, for systemd, the 0600 .nspawn file nspawn reads it from) holds it."""
    secret = "s3cret value 'with' spaces, $HOME and 100%"  # nothing JSON escapes: grep finds it
    command = ["/bin/sh", "-c", 'printf %s "$TOKEN" > /root/token.txt; exec sleep 1000']
    base = {"name": "vault", "image": "busybox", "command": command}
    applied = converge(secret_env={"TOKEN": secret}, **base)
    assert applied["container"]["config"]["secret_env"]["TOKEN"].startswith("hmac-sha256:")
    rootfs = target.rootfs("vault")
    assert wait_for(lambda: target.read(f"{rootfs}/root/token.txt") == secret)

    pattern = base64.b64encode(secret.encode()).decode()
    holders = target.sh(
        f"printf %s {pattern} | base64 -d > /tmp/volt-secret-pattern;"
        f" grep -rlF -f /tmp/volt-secret-pattern --exclude-dir=vault {target.data_dir} /etc/systemd 2>/dev/null"
        " | xargs -r stat -c '%a %n'; rm -f /tmp/volt-secret-pattern"
    )
    expected = {f"600 {target.data_dir}/secrets/vault.json"}
    if target.backend == "systemd":
        expected.add("600 /etc/systemd/nspawn/vault.nspawn")
    assert set(holders.split("\n")) - {""} == expected
    assert target.sh(f"stat -c %a {target.data_dir}/secrets").strip() == "700"

    assert target.volt(name="vault", state="absent")["changed"] is True
    assert not target.exists(f"{target.data_dir}/secrets/vault.json")
