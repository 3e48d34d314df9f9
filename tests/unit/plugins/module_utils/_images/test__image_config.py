"""An OCI image's config is untrusted input: kept only as checked, canonical fields."""

from __future__ import annotations

import json

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._images import _image_config

NGINX = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Env": ["PATH=/usr/local/sbin:/usr/bin:/bin", "NGINX_VERSION=1.27.0", "EMPTY=", "EQ=a=b"],
        "WorkingDir": "/srv",
        "User": "101:101",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "443": {}},
        "StopSignal": "SIGQUIT",
        "Labels": {"maintainer": "NGINX", "a": "b"},
        "Volumes": {"/var/cache": {}},
    },
    "rootfs": {"type": "layers", "diff_ids": []},
}


def test_the_fields_containers_use_are_kept_canonical():
    config = _image_config.parse(json.dumps(NGINX).encode(), "nginx:1")
    assert config == {
        "entrypoint": ["/docker-entrypoint.sh"],
        "cmd": ["nginx", "-g", "daemon off;"],
        "env": {"PATH": "/usr/local/sbin:/usr/bin:/bin", "NGINX_VERSION": "1.27.0", "EMPTY": "", "EQ": "a=b"},
        "workdir": "/srv",
        "user": "101:101",
        "exposed_ports": ["53/udp", "80/tcp", "443/tcp"],
        "stop_signal": "SIGQUIT",
        "labels": {"a": "b", "maintainer": "NGINX"},
    }


def test_an_image_without_a_config_object_has_an_empty_one():
    assert _image_config.parse(b'{"architecture": "amd64", "os": "linux"}', "x") == {}
    assert _image_config.parse(b'{"config": null}', "x") == {}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"Cmd": "nginx -g"}, "Cmd is 'nginx -g', not a list of strings"),
        ({"Entrypoint": ["a", 1]}, "Entrypoint is"),
        ({"Env": ["NOEQUALS"]}, "Env entry 'NOEQUALS' is not NAME=value"),
        ({"Env": ["1BAD=x"]}, "Env entry '1BAD=x'"),
        ({"WorkingDir": "relative"}, "WorkingDir 'relative' is not an absolute path"),
        ({"User": "a b"}, "User 'a b' is not"),
        ({"ExposedPorts": {"80/icmp": {}}}, "exposed port '80/icmp'"),
        ({"ExposedPorts": {"70000": {}}}, "exposed port '70000'"),
        ({"StopSignal": "SIGNOPE"}, "StopSignal 'SIGNOPE' is not a signal"),
        ({"Labels": {"a": 1}}, "Labels are"),
    ],
)
def test_a_bad_field_is_refused_naming_it_and_the_image(config, message):
    with pytest.raises(VoltError, match="^evil:1: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        _image_config.parse(json.dumps({"config": config}).encode(), "evil:1")


@pytest.mark.parametrize(
    ("blob", "message"), [(b"[1]", "not a JSON object"), (b"{", "not JSON"), (b" " * (4 * 1024 * 1024 + 1), "larger")]
)
def test_a_config_that_is_no_config_is_refused(blob, message):
    with pytest.raises(VoltError, match=message):
        _image_config.parse(blob, "evil:1")


@pytest.mark.parametrize(
    ("given", "name"),
    [("SIGQUIT", "SIGQUIT"), ("quit", "SIGQUIT"), (3, "SIGQUIT"), ("15", "SIGTERM"), ("SIGRTMIN+3", "SIGRTMIN+3")],
)
def test_signals_are_named_as_linux_numbers_them(given, name):
    assert _image_config.signal_name(given) == name


def test_signal_numbers():
    assert _image_config.signal_number("SIGQUIT") == 3
    assert _image_config.signal_number("SIGRTMIN+3") == 37


@pytest.mark.parametrize("bad", ["SIGFOO", 0, 99, True, "RTMIN+40", ""])
def test_bad_signals_are_refused(bad):
    with pytest.raises(VoltError, match="is not a signal name or number"):
        _image_config.signal_name(bad)
