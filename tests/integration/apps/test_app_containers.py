"""Real application images run as their authors meant, with no command: a web server with an
entrypoint script, CMD, a stop signal and a port; a key-value server as its own USER in a WORKDIR
with its data on a volume; a Python application with ENV; and an image that fails at once.

Each runs on proot (5.4.0 and Debian's 5.1.0, on this machine) and on
the fleet host with systemd as PID 1 (sys1, pulling through the SSH tunnel of fleet_registry),
answers on its port from the host, survives a re-run with changed=false (the converge sequence),
and stops gracefully on its own stop signal.
"""

from __future__ import annotations

import json
import os
import shlex

import pytest

from ...polling import wait_for
from ..conftest import prepared_target
from . import app_images

# (target, app): none of them needs proot's port mapping, so Debian's 5.1.0 runs them all too.
CASES = [
    *[("proot-5.4.0", app) for app in ("web", "kv", "pyapp", "fail")],
    *[("proot-5.1.0", app) for app in ("web", "kv", "pyapp", "fail")],
    *[("systemd", app) for app in ("web", "kv", "pyapp", "fail")],
]
# On this machine proot containers share its network: ports no other test uses.
LOCAL_PORTS = {"web": 18480, "kv": 16379, "pyapp": 18400}
IMAGE_PORTS = {"web": 8080, "kv": 6379, "pyapp": 8000}


@pytest.fixture
def app(request):
    return request.param


@pytest.fixture
def target(request, ansible_adhoc, tmp_path):
    """The target of the case, emptied; its .registry is where it pulls the images from."""
    fixture = "fleet_registry" if request.param == "systemd" else "app_registry"
    registry = request.getfixturevalue(fixture)
    for prepared in prepared_target(request, ansible_adhoc, tmp_path):
        prepared.registry = registry
        prepared.local = request.param != "systemd"
        yield prepared


def port(target, app: str) -> int:
    return LOCAL_PORTS[app] if target.local else IMAGE_PORTS[app]


def pull(target, app: str) -> dict:
    result = target.volt("volt_image", name=f"app-{app}", **target.registry.pull_args(app))
    assert not result.get("failed"), result.get("msg")
    return result["image"]


def http_get(target, app: str, path: str = "/") -> str:
    url = f"http://127.0.0.1:{port(target, app)}{path}"
    return target.sh(f"curl -s --max-time 2 {shlex.quote(url)} || true")


def info(target, name: str, lines: int = 0) -> dict:
    result = target.volt("volt_container_info", name=name, log_lines=lines)
    return result["containers"][0] if result["containers"] else {}


def stop(target, name: str) -> dict:
    result = target.volt(name=name, state="stopped")
    assert not result.get("failed"), result.get("msg")
    assert result["container"]["status"] == "stopped"
    return info(target, name, 200)


def test_pull_keeps_the_image_config(target, app):
    image = pull(target, app)
    config = image["config"]
    expected = target.registry.images[app].container_config
    assert config.get("cmd") == expected.get("Cmd")
    assert config["env"]["PATH"] == app_images.PATH_ENV.split("=", 1)[1]
    if app == "web":
        assert config["entrypoint"] == ["/docker-entrypoint.sh"] and config["stop_signal"] == "SIGQUIT"
        assert config["exposed_ports"] == ["8080/tcp"] and config["env"]["WEB_PORT"] == "8080"
        assert config["labels"]["org.opencontainers.image.title"] == "volt-test-web"
    elif app == "kv":
        assert config["user"] == "redis" and config["workdir"] == "/data" and "stop_signal" not in config
    elif app == "pyapp":
        assert config["workdir"] == "/app" and config["stop_signal"] == "SIGINT"
        assert config["env"]["APP_GREETING"] == app_images.PYAPP_GREETING
    # Pulled again: nothing changes.
    again = target.volt("volt_image", name=f"app-{app}", **target.registry.pull_args(app))
    assert again["changed"] is False and again["image"]["config"] == config


@pytest.mark.parametrize(("target", "app"), [c for c in CASES if c[1] == "web"], indirect=True)
def test_web_server_runs_by_its_entrypoint_and_stops_on_sigquit(target, app, converge):
    pull(target, "web")
    env = {"WEB_PORT": str(port(target, "web")), "WEB_ADDR": "127.0.0.1"} if target.local else None
    result = converge(name="web", image="app-web", **({"env": env} if env else {}))
    container = result["container"]
    assert container["command"] == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    assert container["config"]["image_config"]["stop_signal"] == "SIGQUIT"
    assert wait_for(lambda: http_get(target, "web") == app_images.WEB_BODY, timeout=20)
    stopped = stop(target, "web")
    log = "\n".join(stopped["logs"])
    assert "signal 3 (SIGQUIT) received" in log, log  # nginx's graceful shutdown, not SIGTERM's fast one
    assert stopped["exit_code"] == 0 and stopped["exited"] is False
    assert http_get(target, "web") == ""


@pytest.mark.parametrize(("target", "app"), [c for c in CASES if c[1] == "kv"], indirect=True)
def test_key_value_server_runs_as_its_user_in_its_workdir_with_data_on_a_volume(target, app, converge):
    pull(target, "kv")
    data = target.data_dir + "-kv-data"
    target.sh(f"rm -rf {data} && mkdir -p {data} && chown 100:101 {data}")
    args = {"name": "kv", "image": "app-kv", "volumes": [f"{data}:/data"]}
    if target.local:  # this machine's own network: another port, loopback only
        args["command"] = ["redis-server", "--port", str(port(target, "kv")), "--bind", "127.0.0.1"]
        args["command"] += ["--dir", "/data", "--save", "", "--appendonly", "yes", "--protected-mode", "no"]
    try:
        converge(**args)
        probe = (
            'python3 -c \'import socket,sys; s=socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2);'
            ' s.sendall(b"PING\\r\\n"); print(s.recv(16).decode().strip())\''
            f" {port(target, 'kv')} 2>/dev/null || true"
        )
        assert wait_for(lambda: target.sh(probe).strip() == "+PONG", timeout=20), info(target, "kv", 30)
        # The image's USER and WORKDIR: volt_exec defaults to the container's user too.
        whoami = target.volt("volt_exec", name="kv", argv=["sh", "-c", "id -u; id -g; pwd"])
        assert whoami["stdout_lines"] == ["100", "101", "/data"], whoami
        if not target.local:  # nspawn runs it as that user for real
            assert target.sh("ps -o uid= -C redis-server").split() == ["100"]
        assert wait_for(lambda: target.exists(f"{data}/appendonlydir"), timeout=10)  # its data, on the volume
        stopped = stop(target, "kv")
        assert "Received SIGTERM scheduling shutdown" in "\n".join(stopped["logs"])
        assert stopped["exit_code"] == 0
    finally:
        target.volt(name="kv", state="absent")
        target.sh(f"rm -rf {data}")


@pytest.mark.parametrize(("target", "app"), [c for c in CASES if c[1] == "pyapp"], indirect=True)
def test_python_app_gets_the_image_env_under_the_tasks_and_stops_on_sigint(target, app, converge):
    pull(target, "pyapp")
    env = {"APP_GREETING": "hello from the task"}
    if target.local:
        env.update(APP_PORT=str(port(target, "pyapp")), APP_HOST="127.0.0.1")
    converge(name="pyapp", image="app-pyapp", env=env)
    assert wait_for(lambda: http_get(target, "pyapp") == "hello from the task", timeout=20)
    seen = json.loads(http_get(target, "pyapp", "/env"))
    assert seen["environ"]["PYTHONUNBUFFERED"] == "1"  # the image's ENV, under the task's
    assert seen["environ"]["APP_GREETING"] == "hello from the task"
    assert seen["cwd"] == "/app" and seen["uid"] == 0
    stopped = stop(target, "pyapp")
    assert app_images.PYAPP_STOPPED in "\n".join(stopped["logs"])
    assert stopped["exit_code"] == 0 and stopped["exited"] is False


@pytest.mark.parametrize(("target", "app"), [c for c in CASES if c[1] == "fail"], indirect=True)
def test_an_image_that_fails_at_once_fails_the_task_with_its_code_and_output(target, app):
    pull(target, "fail")
    predicted = target.volt(check=True, name="bad", image="app-fail")
    assert predicted["changed"] is True and not predicted.get("failed")
    result = target.volt(name="bad", image="app-fail")
    assert result.get("failed") and result["rc"] == app_images.FAIL_STATUS, result
    assert app_images.FAIL_MESSAGE in result["msg"] and app_images.FAIL_MESSAGE in "\n".join(result["log"])
    assert "exited with code 3" in result["msg"]
    # All or nothing: the container this task made is gone, and nothing of it runs.
    assert target.volt("volt_container_info", name="bad")["exists"] is False
    assert not target.exists(os.path.join(target.data_dir, "containers", "bad"))
    # And every run says so again, never "changed" with a container that is not running.
    assert target.volt(name="bad", image="app-fail")["rc"] == app_images.FAIL_STATUS


def pytest_generate_tests(metafunc):
    if "app" in metafunc.fixturenames and not any(m.name == "parametrize" for m in metafunc.definition.iter_markers()):
        metafunc.parametrize(("target", "app"), CASES, indirect=True)
