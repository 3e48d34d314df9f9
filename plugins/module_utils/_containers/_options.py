# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Container options, each declared once: argument spec, normalisation, comparison and diff.

A config option's canonical value is what is stored with the container and compared on the
next run. An option the user leaves out (None) is not compared: the container keeps what it
has, as community.docker does. `recreate: true` forces a new container anyway.
"""

from __future__ import annotations

import math
import re
from typing import Callable

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import (
    absolute_path,
    image_dir_name,
    split_port,
    validate_name,
)

BACKENDS = ("proot", "systemd")
PROOT = frozenset(("proot",))
SYSTEMD = frozenset(("systemd",))
STATES = ("present", "started", "healthy", "stopped", "restarted", "absent")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PORT_RE = re.compile(r"^(?:(\d{1,5}):)?(\d{1,5})$")


def _image(value: object) -> str:
    image_dir_name(value)  # validates
    return str(value)


def _command(value: object) -> list[str]:
    import shlex

    try:
        argv = shlex.split(value) if isinstance(value, str) else value
    except ValueError as exc:  # an unclosed quote
        raise VoltError(f"command {value!r} cannot be split into arguments: {exc}") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(arg, (str, int, float)) for arg in argv):
        raise VoltError(f"command must be a non-empty string or list of strings, got {value!r}")
    argv = [str(arg) for arg in argv]
    if any("\0" in arg for arg in argv):
        raise VoltError(f"command arguments cannot contain NUL characters: {argv!r}")
    if argv[0].startswith("-"):
        raise VoltError(f"command must start with a program, not an option: {argv[0]!r}")
    return argv


def _entrypoint(value: object) -> list[str]:
    """Like command, but empty ('' or []) is allowed: no entrypoint, not even the image's."""
    if value in ("", []):
        return []
    try:
        return _command(value)
    except VoltError as exc:
        raise VoltError(
            "entrypoint" + exc.msg[len("command") :] if exc.msg.startswith("command") else exc.msg
        ) from None


def _user(value: object) -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.][A-Za-z0-9_.-]*)?", text):
        raise VoltError(f"user {value!r} must be a user or user:group, each a name or a numeric id")
    return text


def _stop_signal(value: object) -> str:
    from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_config import signal_name

    return signal_name(value)


def _env(value: object) -> dict[str, str]:
    result = {}
    for key, item in dict(value).items():  # type: ignore[call-overload]
        if not isinstance(key, str) or not _ENV_KEY_RE.fullmatch(key):
            raise VoltError(f"env key {key!r} is not a valid variable name")
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            # yes/no/true become booleans in YAML; guessing their spelling would surprise someone.
            raise VoltError(f"env value for {key} must be a string or number, got {item!r}; quote it")
        if isinstance(item, float) and not math.isfinite(item):
            raise VoltError(f"env value for {key} must be a finite number, got {item!r}")
        if "\0" in str(item):
            raise VoltError(f"env value for {key} cannot contain a NUL character: {str(item)!r}")
        result[key] = str(item)
    return result


def _volume(value: str) -> str:
    parts = value.split(":")
    mode = "rw"
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) != 2:
        raise VoltError(f"volume {value!r} must look like /host/path:/container/path[:ro|rw]")
    host = absolute_path(parts[0], f"volume host path in {value!r}")
    guest = absolute_path(parts[1], f"volume container path in {value!r}")
    return f"{host}:{guest}" if mode == "rw" else f"{host}:{guest}:ro"


def _port(value: object) -> str:
    """A published port as Docker users write it: PORT, HOST:CONTAINER, either with /tcp or /udp.
    Stored as HOST:CONTAINER, with /udp for UDP. What no backend can do is refused by name."""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    numbers, _sep, protocol = text.partition("/")
    if protocol not in ("", "tcp", "udp"):
        raise VoltError(f"port {value!r}: protocol {protocol!r} is not supported (tcp or udp)")
    parts = numbers.split(":")
    if len(parts) == 3 or (len(parts) > 3 and "[" in numbers):
        raise VoltError(
            f"port {value!r}: publishing on one host address is not supported (proot containers share "
            "the host's network; systemd-nspawn forwards a port from every address of the host): "
            "give HOST:CONTAINER and limit access with the host's firewall"
        )
    if any("-" in part for part in parts):
        raise VoltError(f"port {value!r}: port ranges are not supported; give each port")
    match = _PORT_RE.fullmatch(numbers)
    found = [int(n) for n in match.groups() if n is not None] if match else []
    if not found or not all(0 < n < 65536 for n in found):
        raise VoltError(f"port {value!r} must be PORT or HOST:CONTAINER, each 1-65535, then /tcp or /udp")
    host, guest = found[0], found[-1]
    return "%d:%d" % (host, guest) + ("/udp" if protocol == "udp" else "")


def _memory(value: object) -> int:
    from ansible.module_utils.common.text.formatters import human_to_bytes

    try:
        amount = human_to_bytes(str(value)) if not isinstance(value, int) else value
    except ValueError:
        raise VoltError(f"memory {value!r} is not a size such as 512M or 2G") from None
    if amount <= 0:
        raise VoltError(f"memory must be positive, got {value!r}")
    return amount


def _ports(values: list) -> list[str]:
    ports = [_port(item) for item in values]
    seen: dict[tuple[int, str], object] = {}
    for given, port in zip(values, ports):
        host, _guest, protocol = split_port(port)
        if (host, protocol) in seen:
            raise VoltError(f"ports {seen[host, protocol]!r} and {given!r} both publish host port {host}/{protocol}")
        seen[host, protocol] = given
    return ports


def _cpus(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise VoltError(f"cpus must be a positive number, got {value!r}")
    return float(value)


def _hostname(value: object) -> str:
    label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    if not isinstance(value, str) or len(value) > 64 or not re.fullmatch(rf"{label}(?:\.{label})*", value):
        raise VoltError(f"hostname {value!r} must be a host name: labels of letters, digits and '-', joined by '.'")
    return value


def _grace(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
        raise VoltError(f"start_grace_period must be 0 to 3600 seconds, got {value!r}")
    return float(value)


def _retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
        raise VoltError(f"restart_retries must be 0 (no limit) to 1000000, got {value!r}")
    return value


def _log_max_size(value: object) -> int:
    from ansible.module_utils.common.text.formatters import human_to_bytes

    try:
        size = value if isinstance(value, int) and not isinstance(value, bool) else human_to_bytes(str(value))
    except ValueError:
        size = -1
    if not 4096 <= size <= 1 << 40:
        raise VoltError(f"log_max_size {value!r} must be 4K to 1T (a size such as 512K or 10M)")
    return size


def _log_max_files(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise VoltError(f"log_max_files must be 1 to 100, got {value!r}")
    return value


HEALTHCHECK_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}


def _duration(value: object, what: str) -> float:
    """Seconds from a number or Docker's spelling (1m30s, 500ms, 2h)."""
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"(?:\d+(?:\.\d+)?(?:h|m|s|ms|us))+", value.strip()):
        units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", value.strip())
        seconds = sum(float(number) * units[unit] for number, unit in parts)
    if seconds is None or not math.isfinite(seconds) or not 0 <= seconds <= 86400:
        raise VoltError(f"healthcheck {what} {value!r} must be 0 to 86400 seconds, or a duration such as 30s or 1m30s")
    return round(seconds, 3)


def _healthcheck(value: object) -> dict:
    """Docker's healthcheck, canonical: test as argv (CMD, CMD-SHELL and NONE spelled as Docker
    does; a string runs under /bin/sh -c), durations in seconds. {} means none."""
    if not isinstance(value, dict):
        raise VoltError(f"healthcheck must be a mapping (test, {', '.join(HEALTHCHECK_DEFAULTS)}), got {value!r}")
    value = {key: item for key, item in value.items() if item is not None}  # left out in the task
    unknown = sorted(set(value) - {"test", *HEALTHCHECK_DEFAULTS})
    if unknown:
        raise VoltError(f"healthcheck has unknown keys {unknown} (known: test, {', '.join(HEALTHCHECK_DEFAULTS)})")
    test = value.get("test")
    if (isinstance(test, list) and test[:1] == ["NONE"]) or test in (None, "", []):
        if test is None and value:
            raise VoltError("healthcheck needs a test (a command as a list, or a string for /bin/sh -c)")
        return {}
    if isinstance(test, str):
        argv = ["/bin/sh", "-c", test]
    elif isinstance(test, list) and test[:1] == ["CMD-SHELL"] and len(test) == 2 and isinstance(test[1], str):
        argv = ["/bin/sh", "-c", test[1]]
    else:
        argv = _command(test[1:] if isinstance(test, list) and test[:1] == ["CMD"] else test)
    check = {"test": argv}
    for key, default in HEALTHCHECK_DEFAULTS.items():
        given = value.get(key)
        if key == "retries":
            if given is not None and (isinstance(given, bool) or not isinstance(given, int) or not 1 <= given <= 1000):
                raise VoltError(f"healthcheck retries must be 1 to 1000, got {given!r}")
            check[key] = default if given is None else given
        else:
            check[key] = default if given is None else _duration(given, key)
    if check["interval"] < 0.1 or check["timeout"] < 0.1:
        raise VoltError("healthcheck interval and timeout must be at least 0.1 seconds")
    return check


def _network(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"host|none|[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", value):
        raise VoltError(f"network {value!r} must be host, none, or a bridge name (at most 15 characters)")
    return value


def _kernel_release(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9][A-Za-z0-9._+-]{0,63}", value):
        raise VoltError(f"kernel_release {value!r} must look like a kernel release, such as 5.15.0")
    return value


class Option:
    """One module option. `config` options are stored with the container and compared.

    A plain class rather than a dataclass: modules import this on every run, from a zip
    without bytecode, and the dataclass machinery alone costs milliseconds there.
    """

    __slots__ = (
        "backends",
        "change",
        "choices",
        "config",
        "default",
        "elements",
        "empty",
        "name",
        "no_log",
        "normalize",
        "parameter",
        "suboptions",
        "type",
        "unsupported",
    )

    def __init__(
        self,
        name: str,
        type: str,
        *,
        normalize: Callable[[object], object] | None = None,
        default: object = None,
        elements: str | None = None,
        choices: tuple | None = None,
        config: bool = True,
        empty: object = None,
        backends: frozenset = frozenset(BACKENDS),
        unsupported: str = "fail",
        no_log: bool = False,
        change: str = "recreate",
        parameter: bool = True,
        suboptions: dict | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.normalize = normalize
        self.default = default
        self.elements = elements
        self.choices = choices
        self.config = config
        self.empty = empty  # value a new container gets when the option is left out
        self.backends = backends
        # What a backend outside `backends` does with the option: 'fail', or 'warn' and ignore it.
        self.unsupported = unsupported
        self.no_log = no_log
        # How a drifted value is applied: 'recreate' the container, 'restart' it after updating its
        # settings in place, or 'update' the settings alone.
        self.change = change
        self.parameter = parameter  # False: derived by the module, never given by the user
        self.suboptions = suboptions  # a dict option's keys, for the argument spec

    def argument_spec(self) -> dict:
        spec: dict = {"type": self.type}
        for key in ("default", "elements", "choices"):
            value = getattr(self, key)
            if value is not None:
                spec[key] = list(value) if key == "choices" else value
        if self.no_log:
            spec["no_log"] = True
        if self.suboptions:
            spec["options"] = {key: {"type": kind} for key, kind in self.suboptions.items()}
        return spec


CONTAINER_OPTIONS: tuple[Option, ...] = (
    Option("name", "str", config=False),
    Option("state", "str", default="started", choices=STATES, config=False),
    Option("backend", "str", default="auto", choices=("auto", *BACKENDS), config=False),
    Option("data_dir", "path", config=False),
    Option("proot_path", "path", config=False),
    # Run a proot that does not translate paths (its probe found the statx defect) anyway.
    Option("allow_unsafe_proot", "bool", default=False, config=False),
    # Stored with the container: the systemd backend gives it to the unit (TimeoutStopSec=), so
    # systemctl stop and a host shutdown wait as long as the module's own stop does. Left out,
    # the container keeps its own (10 for a new one).
    Option("stop_timeout", "int", change="update", empty=10),
    Option("recreate", "bool", default=False, config=False),
    Option("force", "bool", default=False, config=False),
    Option("image", "str", normalize=_image),
    Option("rootfs", "path", normalize=lambda v: absolute_path(v, "rootfs")),
    Option("entrypoint", "raw", normalize=_entrypoint),
    Option("command", "raw", normalize=_command),
    Option("user", "str", normalize=_user),
    # Left out, the image's StopSignal, else SIGTERM (see _launch.Launch).
    Option("stop_signal", "str", normalize=_stop_signal),
    Option("env", "dict", normalize=_env, empty={}),
    # Stored and compared as keyed digests (see ContainerManager); the values reach only the guest.
    Option("secret_env", "dict", normalize=_env, empty={}, no_log=True),
    Option("volumes", "list", elements="str", normalize=lambda v: [_volume(i) for i in v], empty=[]),
    Option("ports", "list", elements="str", normalize=_ports, empty=[]),
    # Left out, the image's WorkingDir, else / (see _launch.Launch).
    Option("workdir", "str", normalize=lambda v: absolute_path(v, "workdir")),
    Option("memory", "str", normalize=_memory, backends=SYSTEMD, unsupported="warn", change="restart"),
    Option("cpus", "float", normalize=_cpus, backends=SYSTEMD, unsupported="warn", change="restart"),
    Option("restart_policy", "str", choices=RESTART_POLICIES, change="restart", empty="no"),
    # Restarts after the container's last start by the module, a boot or systemctl (0: no limit).
    Option("restart_retries", "int", normalize=_retries, change="restart", empty=0),
    # proot: the supervisor rotates the log (systemd's containers log to the journal, whose own
    # limits apply, so there the options are stored and ignored without a warning).
    Option("log_max_size", "raw", normalize=_log_max_size, change="restart", empty=1 << 20),
    Option("log_max_files", "int", normalize=_log_max_files, change="restart", empty=3),
    # Docker's shape; run inside the container (proot: by the supervisor; systemd: by a timer).
    Option(
        "healthcheck",
        "dict",
        normalize=_healthcheck,
        change="restart",
        empty={},
        suboptions={"test": "raw", "interval": "raw", "timeout": "raw", "retries": "int", "start_period": "raw"},
    ),
    Option("restart_on_unhealthy", "bool", change="restart", empty=False),
    Option("enabled", "bool", change="update", empty=False),
    Option("boot", "bool", backends=SYSTEMD, empty=False),
    # proot always shares the host's network; its backend accepts only 'host'.
    Option("network", "str", normalize=_network),
    # nspawn sets it (the container's own UTS name); proot emulates what it can (see the docs).
    Option("hostname", "str", normalize=_hostname),
    Option("kernel_release", "str", normalize=_kernel_release, backends=PROOT),
    # Not a module option: the digest the image had when the container was made. A new digest
    # under the same image name (a moved tag, a new tarball) is drift like any other.
    Option("image_digest", "str", parameter=False),
    # Not a module option either: the image's config (Entrypoint, Cmd, Env, ...) when the
    # container was made, kept with it so that it runs the same after the image changes.
    Option("image_config", "dict", parameter=False),
    # How long a start watches the container before it counts as running (not stored).
    Option("start_grace_period", "float", default=1.0, normalize=_grace, config=False),
    # state=healthy: how long to wait for the health check to pass (not stored).
    Option("healthy_wait_timeout", "float", default=300.0, config=False),
)
CONFIG_OPTIONS = tuple(option for option in CONTAINER_OPTIONS if option.config)


def argument_spec() -> dict:
    return {option.name: option.argument_spec() for option in CONTAINER_OPTIONS if option.parameter}


MUTUALLY_EXCLUSIVE = [("image", "rootfs")]


def desired_config(params: dict, backend: str, warn: Callable[[str], None]) -> dict:
    """Canonical values of the config options the user gave, checked against the backend."""
    validate_name(params["name"])
    desired = {}
    for option in CONFIG_OPTIONS:
        value = params.get(option.name)
        if value is None:
            continue
        if option.normalize:
            value = option.normalize(value)  # bad values fail everywhere, enforced or not
        if backend not in option.backends:
            if option.unsupported == "warn":
                warn(f"{option.name} is not enforced by the {backend} backend and is ignored")
                continue
            supported = ", ".join(sorted(option.backends))
            raise VoltError(f"{option.name} is not supported by the {backend} backend (supported by: {supported})")
        desired[option.name] = value
    return desired


def effective_config(desired: dict, backend: str) -> dict:
    """The full config a container gets: what was asked, plus the backend's options' empty values."""
    config = {
        option.name: option.empty
        for option in CONFIG_OPTIONS
        if option.empty is not None and backend in option.backends
    }
    config.update(desired)
    return {name: value for name, value in config.items() if value is not None}


def merged(current: dict, desired: dict) -> dict:
    """The container's config with the asked-for options laid over it (image and rootfs exclude each other)."""
    config = {name: value for name, value in current.items() if name not in _SOURCES or not _SOURCES & set(desired)}
    config.update(desired)
    return config


_SOURCES = {"image", "rootfs"}


def change_needed(names: list[str]) -> str | None:
    """The heaviest way to apply drift in these options: 'recreate', 'restart', 'update' or None."""
    kinds = {_option(name).change for name in names}
    return next((kind for kind in ("recreate", "restart", "update") if kind in kinds), None)


def drifted(desired: dict, current: dict) -> list[str]:
    """Names of the options whose asked-for value differs from the container's."""
    return [name for name, value in desired.items() if current.get(name, _option(name).empty) != value]


def _option(name: str) -> Option:
    return next(option for option in CONFIG_OPTIONS if option.name == name)


def normalize(name: str, value: object) -> object:
    """One option's canonical value (for other modules that take the same option, e.g. env)."""
    option = _option(name)
    return option.normalize(value) if option.normalize else value
