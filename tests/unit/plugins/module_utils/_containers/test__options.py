from __future__ import annotations

import re

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError


def params(**overrides):
    base = {option.name: option.default for option in _options.CONTAINER_OPTIONS}
    base["name"] = "web"
    base.update(overrides)
    return base


def desired(backend="proot", **overrides):
    warnings = []
    return _options.desired_config(params(**overrides), backend, warnings.append), warnings


def test_argument_spec_declares_every_option_once():
    spec = _options.argument_spec()
    assert set(spec) == {option.name for option in _options.CONTAINER_OPTIONS if option.parameter}
    assert "image_digest" not in spec  # derived by the module, not a user option
    assert spec["state"] == {"type": "str", "default": "started", "choices": list(_options.STATES)}
    assert spec["volumes"] == {"type": "list", "elements": "str"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sleep 10", ["sleep", "10"]),
        ("/bin/sh -c 'echo a b'", ["/bin/sh", "-c", "echo a b"]),
        (["httpd", "-p", 8080], ["httpd", "-p", "8080"]),
    ],
)
def test_command_is_normalised_to_argv(given, expected):
    assert desired(command=given)[0]["command"] == expected


@pytest.mark.parametrize("bad", ["", [], ["-x", "y"], [["nested"]]])
def test_bad_command_names_the_value(bad):
    with pytest.raises(VoltError, match="command"):
        desired(command=bad)


def test_env_values_become_strings_and_booleans_are_refused():
    assert desired(env={"A": 1, "B": "x"})[0]["env"] == {"A": "1", "B": "x"}
    with pytest.raises(VoltError, match="env value for DEBUG"):
        desired(env={"DEBUG": True})
    with pytest.raises(VoltError, match="'1BAD'"):
        desired(env={"1BAD": "x"})


def test_volumes_and_ports_are_canonical():
    config = desired(volumes=["/srv//www/:/var/www", "/a:/b:rw", "/c:/d:ro"], ports=["8080", "80:8081", 53])[0]
    assert config["volumes"] == ["/srv/www:/var/www", "/a:/b", "/c:/d:ro"]
    assert config["ports"] == ["8080:8080", "80:8081", "53:53"]


@pytest.mark.parametrize("bad", ["relative:/x", "/x", "/a:/b:zz", "/a:b"])
def test_bad_volume_is_named(bad):
    with pytest.raises(VoltError) as info:
        desired(volumes=[bad])
    assert repr(bad) in info.value.msg


@pytest.mark.parametrize("bad", ["0", "70000", "a:b", "1:2:3", "-1"])
def test_bad_port_is_named(bad):
    with pytest.raises(VoltError, match="port"):
        desired(ports=[bad])


def test_limits_warn_on_proot_and_are_kept_on_systemd():
    config, warnings = desired(memory="512M", cpus=1.5)
    assert "memory" not in config and "cpus" not in config
    assert len(warnings) == 2 and "memory is not enforced by the proot backend" in warnings[0]
    config, warnings = desired(backend="systemd", memory="512M", cpus=1.5)
    assert config["memory"] == 512 * 1024 * 1024 and config["cpus"] == 1.5 and not warnings


def test_proot_only_option_fails_elsewhere():
    assert desired(kernel_release="5.15.0")[0]["kernel_release"] == "5.15.0"
    with pytest.raises(VoltError, match="kernel_release is not supported by the systemd backend"):
        desired(backend="systemd", kernel_release="5.15.0")
    with pytest.raises(VoltError, match="kernel_release"):
        desired(kernel_release="$(reboot)")


def test_bad_name_fails_before_anything_else():
    with pytest.raises(VoltError, match=r"invalid container name '\.\./etc'"):
        _options.desired_config(params(name="../etc"), "proot", print)


def test_effective_config_fills_empty_values_only():
    assert _options.effective_config({"image": "busybox"}, "proot") == {
        "image": "busybox",
        "env": {},
        "secret_env": {},
        "volumes": [],
        "ports": [],
        "stop_timeout": 10,
        "restart_policy": "no",
        "restart_retries": 0,
        "log_max_size": 1 << 20,
        "log_max_files": 3,
        "healthcheck": {},
        "restart_on_unhealthy": False,
        "enabled": False,
    }


def test_only_given_options_are_compared():
    current = _options.effective_config({"image": "busybox", "env": {"A": "1"}}, "proot")
    assert _options.drifted({}, current) == []
    assert _options.drifted({"image": "busybox", "env": {"A": "1"}}, current) == []
    # Left out, workdir is the image's: giving one (even /) is a change.
    assert _options.drifted({"workdir": "/"}, current) == ["workdir"]
    assert _options.drifted({"env": {"A": "2"}, "ports": []}, current) == ["env"]
    assert _options.drifted({"command": ["sh"], "volumes": ["/a:/b"]}, current) == ["command", "volumes"]


def test_merged_keeps_what_was_left_out_and_swaps_sources():
    current = _options.effective_config({"rootfs": "/srv/r", "env": {"A": "1"}, "command": ["sh"]}, "proot")
    assert _options.merged(current, {"env": {"A": "2"}})["rootfs"] == "/srv/r"
    swapped = _options.merged(current, {"image": "busybox"})
    assert swapped["image"] == "busybox" and "rootfs" not in swapped and swapped["command"] == ["sh"]


def test_systemd_defaults_and_how_drift_is_applied():
    config = _options.effective_config({"image": "busybox"}, "systemd")
    assert config["restart_policy"] == "no" and config["enabled"] is False and config["boot"] is False
    assert _options.change_needed([]) is None
    assert _options.change_needed(["enabled"]) == "update"
    assert _options.change_needed(["enabled", "memory"]) == "restart"
    assert _options.change_needed(["memory", "env"]) == "recreate"


@pytest.mark.parametrize("bad", ["voltbr0-too-long-name", "a b", "", "-x"])
def test_bad_network_is_named(bad):
    with pytest.raises(VoltError, match="network"):
        desired(backend="systemd", network=bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"command": "sh -c 'unclosed"}, r"command .* cannot be split into arguments: No closing quotation"),
        ({"command": ["sh", "a\0b"]}, "command arguments cannot contain NUL"),
        ({"env": {"A": "x\0y"}}, "env value for A cannot contain a NUL"),
        ({"env": {"A": float("nan")}}, "env value for A must be a finite number"),
        ({"secret_env": {"TOKEN": "x\0"}}, "env value for TOKEN cannot contain a NUL"),
        ({"cpus": float("nan")}, "cpus must be a positive number, got nan"),
        ({"cpus": float("inf")}, "cpus must be a positive number, got inf"),
        ({"cpus": True}, "cpus must be a positive number, got True"),
        ({"ports": ["8080:80", "8080:81"]}, "ports '8080:80' and '8080:81' both publish host port 8080"),
        ({"ports": ["8080", "8080:8080"]}, "both publish host port 8080"),
        ({"workdir": "/srv\n[Files]"}, "workdir must not contain control characters"),
        ({"volumes": ["/srv:/srv\nBind=/host"]}, "must not contain control characters"),
    ],
)
def test_hostile_values_are_refused_naming_them(args, message):
    """Values that once crashed with a traceback or slipped through are refused by name."""
    with pytest.raises(VoltError, match=message):
        desired(**args)


@pytest.mark.parametrize(("args", "message"), [({"memory": "lots"}, "memory 'lots'"), ({"cpus": -1}, "cpus")])
def test_unenforced_options_are_still_validated(args, message):
    """proot ignores memory and cpus with a warning, but a bad value is an error there too."""
    with pytest.raises(VoltError, match=message):
        desired(backend="proot", **args)


def test_ports_take_dockers_spellings():
    config = desired(ports=["8080:80/tcp", "53:53/udp", "53:53", "9000/udp", 7])[0]
    assert config["ports"] == ["8080:80", "53:53/udp", "53:53", "9000:9000/udp", "7:7"]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("127.0.0.1:8080:80", "publishing on one host address is not supported"),
        ("8080-8090:80-90", "port ranges are not supported"),
        ("80/sctp", "protocol 'sctp' is not supported"),
        ("80:80/udp/tcp", "protocol 'udp/tcp' is not supported"),
    ],
)
def test_docker_spellings_no_backend_can_do_are_refused_saying_why(bad, message):
    with pytest.raises(VoltError, match=message) as info:
        desired(ports=[bad])
    assert repr(bad) in info.value.msg


def test_the_same_host_port_twice_is_refused_per_protocol():
    with pytest.raises(VoltError, match="both publish host port 53/udp"):
        desired(ports=["53/udp", "53:5353/udp"])


@pytest.mark.parametrize(
    ("option", "good", "bad"),
    [
        ("user", ["redis", "100", "100:101", "www-data:adm"], ["a b", ":5", "x:", "-x", True]),
        ("stop_signal", ["SIGQUIT", "quit", 3], ["SIGNOPE", 0]),
        ("hostname", ["web", "web-1.example.org"], ["-web", "a_b", "x" * 65, "web."]),
        ("entrypoint", ["/bin/sh -c", [], ""], [["-x"]]),
    ],
)
def test_new_options_are_checked(option, good, bad):
    for value in good:
        desired(**{option: value})
    for value in bad:
        with pytest.raises(VoltError, match=option.split("_")[0]):
            desired(**{option: value})


def test_start_grace_period_is_a_run_setting_not_stored():
    spec = _options.argument_spec()["start_grace_period"]
    assert spec == {"type": "float", "default": 1.0}
    assert "start_grace_period" not in desired(start_grace_period=5.0)[0]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"test": ["wget", "-q", "http://x/"]}, {"test": ["wget", "-q", "http://x/"]}),
        ({"test": ["CMD", "true"], "interval": "1m30s"}, {"test": ["true"], "interval": 90.0}),
        ({"test": ["CMD-SHELL", "curl -f x || exit 1"]}, {"test": ["/bin/sh", "-c", "curl -f x || exit 1"]}),
        ({"test": "pg_isready", "timeout": "500ms", "retries": 5}, {"test": ["/bin/sh", "-c", "pg_isready"]}),
        ({"test": ["true"], "start_period": 2.5, "interval": None}, {"test": ["true"], "start_period": 2.5}),
    ],
)
def test_healthcheck_takes_dockers_spellings(given, expected):
    check = _options.normalize("healthcheck", given)
    for key, value in expected.items():
        assert check[key] == value
    assert set(check) == {"test", "interval", "timeout", "retries", "start_period"}
    if "timeout" in given:
        assert check["timeout"] == 0.5 and check["retries"] == 5


@pytest.mark.parametrize("given", [{}, {"test": ["NONE"]}, {"test": None, "interval": None}])
def test_no_healthcheck_is_an_empty_one(given):
    assert _options.normalize("healthcheck", given) == {}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"interval": 5}, "needs a test"),
        ({"test": ["true"], "interval": "soon"}, "interval 'soon'"),
        ({"test": ["true"], "interval": 0.01}, "at least 0.1"),
        ({"test": ["true"], "retries": 0}, "retries must be 1 to 1000"),
        ({"test": ["true"], "tries": 3}, "unknown keys ['tries']"),
        ({"test": ["-x"]}, "must start with a program"),
        ("true", "must be a mapping"),
    ],
)
def test_bad_healthchecks_are_refused_by_name(given, message):
    with pytest.raises(VoltError, match=re.escape(message)):
        _options.normalize("healthcheck", given)
