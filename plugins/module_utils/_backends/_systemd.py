# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""systemd backend: each container is an instance of one template unit running systemd-nspawn.

Layout: rootfs at <data_dir>/containers/<name>, settings in /etc/systemd/nspawn/<name>.nspawn
(whose first line is the Volt record: config and creation time), limits, the restart policy and
the rootfs path in the drop-in /etc/systemd/system/volt-container@<name>.service.d/50-volt.conf.
A health check is the timer volt-health@<name>.timer, which the container's unit wants and which
starts the probe service volt-health@<name>.service, each with a drop-in of the same name; the
probe's environment is in <data_dir>/health/<name>.env, its record in /run/volt/health/<name>.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator

from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _nspawn_files, _nspawn_network
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import (
    Backend,
    ContainerRecord,
    remapped_ports,
)
from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import Launch
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord, ForeignRecord, VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records, _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_config import signal_number
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import validate_name

NSPAWN_DIR = "/etc/systemd/nspawn"
UNIT_DIR = "/etc/systemd/system"
DROPIN_NAME = "50-volt.conf"
# The .nspawn file and the drop-in hold env values (maybe secrets); systemd reads them as root.
PRIVATE = 0o600
RUNNING_STATES = ("active", "activating", "reloading")
# States with processes that a stop must end (deactivating: a stop under way).
BUSY_STATES = (*RUNNING_STATES, "deactivating")
_POLL_SECONDS = 0.1
BRIDGE = "voltbr0"
EXIT_DIR = "/run/volt/exit"
# The health service's RuntimeDirectory= (see _nspawn_files.HEALTH_SERVICE_UNIT).
HEALTH_DIR = "/run/volt/health"
_HOST_TOOL_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")


def nspawn_user(root: str, user: str) -> str:
    """The passwd name nspawn's User= needs for `user` (a name, uid or user:group): nspawn looks
    the user up in the container itself (with its getent) and takes that user's own group."""
    uid, gid, _home = _rootfs.resolve_user(root, user)
    for fields in _rootfs.passwd_entries(root):
        if int(fields[2]) == uid:
            if int(fields[3]) != gid:
                raise VoltError(
                    f"user {user!r}: the systemd backend runs the payload as a user of the container's "
                    f"/etc/passwd with that user's own group ({fields[0]}: gid {fields[3]}), not gid {gid}"
                )
            if fields[0] not in ("root",) and not any(
                _rootfs.is_executable_file(root, path) for path in ("/usr/bin/getent", "/bin/getent")
            ):
                raise VoltError(
                    f"user {user!r}: systemd-nspawn looks users up with getent inside the container, "
                    "and this container has no getent (in /usr/bin or /bin)"
                )
            return fields[0]
    raise VoltError(
        f"user {user!r}: uid {uid} is not in the container's /etc/passwd, which the systemd backend "
        "needs (systemd-nspawn's User= takes a user of the container)"
    )


def _rfc3339(timestamp: str | None) -> str | None:
    """systemctl's '@<seconds>' (--timestamp=unix) as the RFC 3339 UTC time the proot backend reports."""
    if not timestamp or not timestamp.startswith("@") or not timestamp[1:].isdigit() or timestamp == "@0":
        return None
    import datetime

    moment = datetime.datetime.fromtimestamp(int(timestamp[1:]), datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SystemdBackend(Backend):
    name = "systemd"

    # -- paths -------------------------------------------------------------------------------
    def rootfs(self, name: str) -> str:
        # nspawn boots the container's directory itself.
        return self.container_dir(name)

    @staticmethod
    def _settings(name: str) -> str:
        return os.path.join(NSPAWN_DIR, validate_name(name) + ".nspawn")

    @staticmethod
    def _exit_file(name: str) -> str:
        """Where the unit records how each run ended (see _nspawn_files.EXIT_RECORD)."""
        return os.path.join(EXIT_DIR, validate_name(name))

    def _last_exit(self, name: str) -> tuple[int | None, str | None]:
        """(exit status, finish time) of the container's last run since the host booted."""
        try:
            with open(self._exit_file(name), encoding="ascii", errors="replace") as handle:
                text = handle.read(256)
                finished = os.fstat(handle.fileno()).st_mtime
        except OSError:
            return None, None
        code = _nspawn_files.parse_exit_record(text)
        return (code, _records.utc_time(finished)) if code is not None else (None, None)

    @staticmethod
    def _dropin(name: str) -> str:
        return os.path.join(UNIT_DIR, _nspawn_files.unit_name(validate_name(name)) + ".d", DROPIN_NAME)

    @staticmethod
    def _health_dropins(name: str) -> tuple[str, str]:
        """The drop-ins of the container's health timer and health service."""
        validate_name(name)
        return (
            os.path.join(UNIT_DIR, _nspawn_files.health_timer_name(name) + ".d", DROPIN_NAME),
            os.path.join(UNIT_DIR, _nspawn_files.health_service_name(name) + ".d", DROPIN_NAME),
        )

    def _health_env(self, name: str) -> str:
        """The probe's environment (it holds secret_env: private, and not a unit setting, which
        any user could read through systemctl show)."""
        return os.path.join(self.data_dir, "health", validate_name(name) + ".env")

    @staticmethod
    def _health_record(name: str) -> str:
        return os.path.join(HEALTH_DIR, validate_name(name))

    def _health_files(self, name: str) -> tuple[str, ...]:
        """What a health check keeps besides its drop-ins: the environment, the record and the
        probe script's temporary files."""
        record = self._health_record(name)
        return (self._health_env(name), record, record + ".new", record + ".rc")

    def _systemctl(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        return self.runner.run(["systemctl", *args], check=check)

    # -- files ---------------------------------------------------------------------------------
    @staticmethod
    def _write_if_changed(path: str, content: str, mode: int = 0o644) -> bool:
        """Write content unless the file already holds exactly it; True if it wrote.

        A file with the right content but another mode (written by an older version) only gets
        its mode fixed: systemd has nothing new to read.
        """
        try:
            with open(path, encoding="utf-8") as handle:
                if handle.read() == content:
                    if os.stat(handle.fileno()).st_mode & 0o7777 != mode:
                        os.chmod(path, mode)
                    return False
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        _records.atomic_write(path, content, mode)
        return True

    def _install_template(self) -> bool:
        path = os.path.join(UNIT_DIR, _nspawn_files.TEMPLATE_NAME)
        if os.path.exists(path):  # the role (or an administrator) owns it once it is there
            return False
        return self._write_if_changed(path, _nspawn_files.TEMPLATE_UNIT)

    def _install_health_templates(self) -> bool:
        written = False
        for name, text in (
            (_nspawn_files.HEALTH_TIMER_TEMPLATE, _nspawn_files.HEALTH_TIMER_UNIT),
            (_nspawn_files.HEALTH_SERVICE_TEMPLATE, _nspawn_files.HEALTH_SERVICE_UNIT),
        ):
            path = os.path.join(UNIT_DIR, name)
            if not os.path.exists(path):  # as the container template: an administrator's once there
                written = self._write_if_changed(path, text) or written
        return written

    @staticmethod
    def _host_tool(name: str) -> str | None:
        """A program of the host at a fixed place (the probe runs without PATH; the same path on
        every run keeps the drop-in unchanged)."""
        for directory in _HOST_TOOL_DIRS:
            path = os.path.join(directory, name)
            if os.access(path, os.X_OK) and os.path.isfile(path):
                return path
        return None

    def _render_health(self, name: str, config: dict, root: str) -> tuple[str, str, str] | None:
        """(timer drop-in, service drop-in, environment file) of the container's health check, or
        None without one. The probe runs as volt_exec runs commands: the container's user, its
        working directory, its whole environment."""
        check = config.get("healthcheck")
        if not check:
            return None
        launch = Launch(config)
        uid, gid, home = self.exec_user(root, None, config)
        if launch.workdir != "/" and not _rootfs.is_executable_file(root, "/bin/sh"):
            raise VoltError(
                f"healthcheck: changing into the workdir {launch.workdir!r} in container {name} needs /bin/sh in it",
                option="healthcheck",
            )
        if config.get("boot"):
            # The container's init: what the unit's own stop sends it (nspawn's SIGRTMIN+3).
            target, signal = "leader", signal_number("SIGRTMIN+3")
        else:
            target, signal = "payload", signal_number(launch.stop_signal)
        tools = {tool: self._host_tool(tool) or f"/usr/bin/{tool}" for tool in _nspawn_files.HEALTH_TOOLS}
        service = _nspawn_files.render_health_service(
            name,
            check,
            _nspawn_files.health_probe(check, launch.workdir),
            record=self._health_record(name),
            env_file=self._health_env(name),
            ids=(uid, gid),
            signal=signal if config.get("restart_on_unhealthy") else 0,
            target=target,
            hz=os.sysconf("SC_CLK_TCK"),
            tools=tools,
        )
        env = _nspawn_files.render_health_env(self.guest_env(name, config, home))
        return _nspawn_files.render_health_timer(check), service, env

    def _write_health(self, name: str, rendered: tuple[str, str, str] | None) -> bool:
        """Write (or remove) the health check's files; True when systemd must reload."""
        dropins = self._health_dropins(name)
        if rendered is None:
            if not any(os.path.exists(path) for path in dropins):
                return False
            # Before its settings go: a timer without any is refused at the next reload.
            self._systemctl("stop", _nspawn_files.health_timer_name(name), check=False)
            self._remove_files(name, dropins, self._health_files(name))
            return True
        timer, service, env = rendered
        changed = self._install_health_templates()
        _records.private_dir(self.data_dir)
        _records.private_dir(os.path.dirname(self._health_env(name)))
        self._write_if_changed(self._health_env(name), env, PRIVATE)  # read at each probe
        changed = self._write_if_changed(dropins[0], timer) or changed
        return self._write_if_changed(dropins[1], service, PRIVATE) or changed

    @staticmethod
    def _remove_files(name: str, dropins: tuple[str, ...], others: tuple[str, ...] = ()) -> None:
        """Remove drop-ins (and their directories once empty) and other files of the container."""
        for path in (*dropins, *others):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        for path in dropins:
            directory = os.path.dirname(path)
            if os.path.isdir(directory) and not os.listdir(directory):
                os.rmdir(directory)

    def _health(self, name: str, config: dict, leader: int | None) -> dict | None:
        """A running container's health, from the record its probes write (starting until the
        first probe of this run: a record of an earlier run is not this one's)."""
        if not config.get("healthcheck"):
            return None
        data = b""
        try:
            fd = os.open(self._health_record(name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            pass
        else:
            with os.fdopen(fd, "rb") as handle:
                data = handle.read(64 + _nspawn_files.HEALTH_OUTPUT_MAX)
        health = _nspawn_files.parse_health_record(data, self._run(leader))
        return health or {"status": "starting", "failing_streak": 0, "last_exit_code": None, "last_output": ""}

    @staticmethod
    def _run(leader: int | None) -> str | None:
        """A run of the container, as the probe script names it: leader pid:start time."""
        if not leader:
            return None
        try:
            with open(f"/proc/{leader}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            return None
        return f"{leader}:{fields[19]}" if len(fields) > 19 else None

    def default_config(self) -> dict:
        """A new container joins the voltbr0 bridge when the host has one, else the host's network."""
        return {"network": BRIDGE if os.path.isdir(f"/sys/class/net/{BRIDGE}/bridge") else "host"}

    # -- checks --------------------------------------------------------------------------------
    def check_config(self, name: str, config: dict, actions: list[str]) -> None:
        network = config.get("network") or "host"
        if network not in ("host", "none") and not os.path.isdir(f"/sys/class/net/{network}/bridge"):
            raise VoltError(
                f"network {network!r} is not a bridge on this host (create it with the "
                "armoredgate.volt.systemd_host role, or use network: host or none)"
            )
        if network == "host":
            remapped = remapped_ports(config)
            if remapped:
                raise VoltError(
                    f"ports {', '.join(remapped)} need a private network: with network: host the "
                    "container uses the host's ports directly (give the same port on both sides)"
                )
        if any("\n" in arg for arg in config.get("command") or []):
            raise VoltError(
                "command arguments cannot contain a newline with the systemd backend "
                "(systemd.nspawn settings are one line); run a script file instead"
            )
        root = self.source(name, config) if "create" in actions else self.rootfs(name)
        if "create" in actions or "update" in actions:
            self._check_renders(name, config, root)
        if config.get("healthcheck") and {"create", "update", "start"} & set(actions):
            missing = [tool for tool in _nspawn_files.HEALTH_TOOLS if self._host_tool(tool) is None]
            if missing:
                raise VoltError(
                    f"healthcheck: the host lacks {', '.join(missing)} (in {', '.join(_HOST_TOOL_DIRS)}), "
                    "which the probes run with (coreutils, util-linux, systemd-container)",
                    option="healthcheck",
                )
        if "start" in actions:
            if self.runner.which("systemd-nspawn") is None:
                raise VoltError(
                    "systemd-nspawn is not installed (package systemd-container; the "
                    "armoredgate.volt.systemd_host role installs it)"
                )
            if not config.get("boot"):
                self.check_start(root, config, check_ports="stop" not in actions)

    def _check_renders(self, name: str, config: dict, root: str) -> None:
        """Render both files now, so a value systemd cannot carry is refused (VoltError naming
        it) before anything is cloned or written, in check mode too."""
        record = {"name": name, "config": config}
        self._launch_record(record, config, root)
        _nspawn_files.render_dropin(config, self.rootfs(name), None, self._exit_file(name))
        _nspawn_files.render_nspawn(config, record)
        self._render_health(name, config, root)

    @staticmethod
    def _launch_record(record: dict, config: dict, root: str) -> None:
        """Put in the record what the files need from the container's tree: the entrypoint the
        seed's detection finds (when neither options nor image name one) and the user's name
        (nspawn's User= takes a name of the container's passwd, with that user's own group)."""
        if config.get("boot"):
            return
        launch = Launch(config)
        if not launch.argv:
            record["entrypoint"] = _rootfs.detect_entrypoint(root)
        if not launch.as_root:
            record["user"] = nspawn_user(root, launch.user)

    def check_secrets(self, values: dict[str, str]) -> None:
        _nspawn_files.render_nspawn({}, {"name": "check"}, values)

    # -- records -------------------------------------------------------------------------------
    def _record(self, name: str) -> dict | None:
        path = self._settings(name)
        try:
            # errors="replace": another tool's file need not be UTF-8; Volt's record line is ASCII.
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except IsADirectoryError as exc:
            raise CorruptRecord(f"corrupt record in {path}: {exc}", path=path) from None
        except FileNotFoundError:
            if os.path.isdir(self.rootfs(name)):
                raise CorruptRecord(
                    f"corrupt container {name}: {path} is missing but its rootfs {self.rootfs(name)} exists",
                    path=path,
                ) from None
            return None
        try:
            record = _nspawn_files.parse_record(text)
        except ValueError as exc:
            raise CorruptRecord(f"corrupt record in {path}: {exc}", path=path) from None
        if record is None:
            # Not corrupt: force must not remove another tool's file.
            raise ForeignRecord(f"{path} was not written by Volt; refusing to manage container {name}", path=path)
        if not isinstance(record.get("config", {}), dict):
            raise CorruptRecord(f"corrupt record in {path}: its config is not a mapping", path=path)
        return record

    @staticmethod
    def _written_by_volt(path: str) -> bool:
        """Whether the .nspawn file starts with Volt's record line (even a damaged one)."""
        try:
            with open(path, "rb") as handle:
                return handle.readline().startswith(_nspawn_files.RECORD_PREFIX.encode())
        except OSError:
            return False

    def _unit_state(self, name: str) -> dict:
        _rc, out, _err = self._systemctl(
            "show",
            _nspawn_files.unit_name(name),
            "--timestamp=unix",
            "--property=ActiveState,SubState,MainPID,ExecMainStartTimestamp,ActiveEnterTimestamp,"
            "InactiveEnterTimestamp,UnitFileState,NRestarts",
        )
        return dict(line.partition("=")[::2] for line in out.splitlines() if "=" in line)

    def _leader(self, name: str) -> int | None:
        rc, out, _err = self.runner.run(["machinectl", "show", name, "--property=Leader", "--value"], check=False)
        return int(out.strip()) if rc == 0 and out.strip().isdigit() else None

    def _addresses(self, name: str) -> list[str]:
        """The container's IP addresses as machined sees them (only a private network has its own)."""
        rc, out, _err = self.runner.run(
            ["machinectl", "list", "--max-addresses=all", "--no-legend", "--no-pager"], check=False
        )
        addresses: list[str] = []
        current = None
        for line in out.splitlines() if rc == 0 else []:
            if not line[:1].isspace():
                fields = line.split()
                current = fields[0] if fields else None
                extra = fields[5:] if current == name else []
            else:
                extra = line.split() if current == name else []
            addresses += [address for address in extra if address != "-"]
        return addresses

    def inspect(self, name: str, persist: bool = False) -> ContainerRecord | None:
        record = self._record(name)
        if record is None:
            return None
        unit = self._unit_state(name)
        # Between a crash and the restart its Restart= asks for, nothing runs.
        if unit.get("ActiveState") in RUNNING_STATES and unit.get("SubState") != "auto-restart":
            status = "running"
        else:
            # Only the record knows about starts before the last boot.
            status = "stopped" if record.get("started") or unit.get("ExecMainStartTimestamp") else "created"
        pid = self._leader(name) if status == "running" else None
        config = record.get("config", {})
        private = record.get("config", {}).get("network") not in (None, "host", "none")
        addresses = self._addresses(name) if status == "running" and private else []
        ip_address = _nspawn_network.ipv4(addresses)
        rootfs = self.rootfs(name)
        last_exit = (None, None) if status == "running" else self._last_exit(name)
        return ContainerRecord(
            name=name,
            backend=self.name,
            status=status,
            config=config,
            pid=pid or None,
            rootfs=rootfs,
            os=_rootfs.os_release(rootfs),
            command=(config.get("command") if config.get("boot") else Launch(config).argv) or record.get("entrypoint"),
            created_at=record.get("created_at"),
            started_at=_rfc3339(unit.get("ActiveEnterTimestamp")),
            stopped_at=_rfc3339(unit.get("InactiveEnterTimestamp")) if status == "stopped" else None,
            addresses=addresses,
            ip_address=ip_address,
            exit_code=last_exit[0],
            finished_at=last_exit[1],
            restart_count=self._restart_count(unit, config),
            # Ended, and not by a stop of Volt's (a host shutdown leaves no exit status behind).
            exited=status == "stopped" and last_exit[0] is not None and not record.get("stopped_by_volt"),
            health=self._health(name, config, pid) if status == "running" else None,
        )

    @staticmethod
    def _restart_count(unit: dict, config: dict) -> int:
        """NRestarts, but the restart that the start limit refused (restart_retries reached)
        is counted by systemd and never ran."""
        count = int(unit["NRestarts"]) if unit.get("NRestarts", "").isdigit() else 0
        limit = _nspawn_files.restart_limit(config)
        return min(count, limit) if limit else count

    def stored_configs(self) -> dict[str, dict]:
        configs = {}
        for name in self._container_names():
            try:
                record = self._record(name)
            except (OSError, ValueError, VoltError):
                continue
            if record is not None:
                configs[name] = record.get("config", {})
        return configs

    def list(self) -> list[ContainerRecord]:
        """Volt's containers; another tool's .nspawn files (no Volt record, or a name Volt
        would never give) are skipped and left alone, a damaged record is listed as corrupt."""
        try:
            entries = os.listdir(NSPAWN_DIR)
        except FileNotFoundError:
            return []
        return self._survey(sorted(entry[: -len(".nspawn")] for entry in entries if entry.endswith(".nspawn")))

    # -- lifecycle ----------------------------------------------------------------------------
    def _write_settings(self, name: str, config: dict, previous: dict) -> bool:
        """Write the drop-in and the .nspawn record (created_at and flags carried over). True
        when the drop-in changed: systemd must reload it (nspawn reads .nspawn at each start)."""
        record = {"name": name, "created_at": previous.get("created_at") or _records.utc_now(), "config": config}
        for flag in ("started", "stopped_by_volt"):
            if previous.get(flag):
                record[flag] = True
        # The same entrypoint detection as proot, done once, when the rootfs is in place.
        self._launch_record(record, config, self.rootfs(name))
        # Render both before writing either: a refused value leaves the files as they were.
        health = self._render_health(name, config, self.rootfs(name))
        timer = _nspawn_files.health_timer_name(name) if health else None
        with self._host0(name, config, previous, record) as host0:
            dropin = _nspawn_files.render_dropin(config, self.rootfs(name), host0, self._exit_file(name), timer)
            settings = _nspawn_files.render_nspawn(config, record, self.read_secrets(name))
            unit_changed = self._write_if_changed(self._dropin(name), dropin, PRIVATE)
            unit_changed = self._write_health(name, health) or unit_changed
            self._write_if_changed(self._settings(name), settings, PRIVATE)
            return unit_changed

    @contextlib.contextmanager
    def _host0(self, name: str, config: dict, previous: dict, record: dict) -> Iterator[list[str] | None]:
        """The ExecStartPost= command that configures the container's host0 (None when the host
        does not), with its address put in the record: the one recorded, while it still fits the
        bridge, else the lowest free one. Held under the host's address lock until written."""
        if not _nspawn_network.configures_host0(config):
            yield None
            return
        bridge = _nspawn_network.bridge_interface(self.runner, config["network"])
        with _nspawn_network.allocation_lock():
            if bridge is not None:
                address = previous.get("address")
                if not _nspawn_network.fits(address, bridge):
                    address = _nspawn_network.choose(bridge, _nspawn_network.recorded_addresses(NSPAWN_DIR, name))
                record["address"], record["gateway"] = address, str(bridge.ip)
            elif previous.get("address") and previous.get("gateway"):  # also while the bridge has no address yet
                record["address"], record["gateway"] = previous["address"], previous["gateway"]
            if not record.get("address"):
                yield None  # a bridge Volt gives no addresses on: the container configures its own
                return
            yield _nspawn_network.exec_start_post(name, record["address"], record["gateway"])

    @staticmethod
    def boot_enabled(config: dict, record: dict) -> bool:
        """Whether the unit starts at boot: enabled, unless restart_policy unless-stopped and the
        module stopped it (the record's stopped_by_volt, cleared by its next start).

        Enablement itself, rather than a condition in the unit, keeps it out of the boot: an
        administrator's `systemctl start` then runs it as it would any unit (a condition would
        skip it and still succeed), `systemctl is-enabled` says what the boot will do, and
        `systemctl enable` (or a start by the module) puts it back in the boot."""
        if not config.get("enabled"):
            return False
        return not (config.get("restart_policy") == "unless-stopped" and record.get("stopped_by_volt"))

    def _apply_enablement(self, name: str, config: dict, record: dict) -> None:
        action = "enable" if self.boot_enabled(config, record) else "disable"
        self._systemctl(action, "--quiet", _nspawn_files.unit_name(name))

    def create(self, name: str, config: dict) -> None:
        source, final = self._new_container(name, config)
        written: list[str] = []
        try:
            with _rootfs.staged(self.containers_dir, name, 0o755) as staging:
                _rootfs.clone_tree(self.runner, source, staging)
                _rootfs.sanitize_tree(staging, strip_setid=False)  # setuid works (and is needed) in nspawn
                self._add_usr(staging)
                self._install_template()
                written = [
                    self._dropin(name),
                    *self._health_dropins(name),
                    self._health_env(name),
                    self._settings(name),
                ]
                os.rename(staging, final)
            self._write_settings(name, config, {})  # the .nspawn record comes last
            self._systemctl("daemon-reload")
            self._apply_enablement(name, config, {})
        except BaseException:
            for path in written:
                if os.path.exists(path):
                    os.unlink(path)
            _rootfs.remove_tree(final)  # when it got there: the staging tree removes itself
            self._systemctl("daemon-reload", check=False)
            raise

    @staticmethod
    def _add_usr(tree: str) -> None:
        """nspawn refuses a tree without /usr ("does not look like an OS"); an empty one is all it
        asks for, so an image that runs under proot runs here too. Only the container's own
        copy gets it, never the image; whatever the image has at /usr stays as it is."""
        try:
            os.mkdir(os.path.join(tree, "usr"), 0o755)
        except FileExistsError:
            pass

    def update(self, name: str, config: dict) -> None:
        record = self._record(name) or {}
        if self._write_settings(name, config, record):
            self._systemctl("daemon-reload")
        self._apply_enablement(name, config, record)

    def remove(self, name: str, stop_timeout: float) -> None:
        unit = _nspawn_files.unit_name(name)
        self.stop(name, stop_timeout)  # also ends a stop under way: nothing may run on the files below
        self._systemctl("reset-failed", unit, check=False)  # a SIGKILLed payload fails the unit
        self._systemctl("disable", "--quiet", unit, check=False)
        dropins = self._health_dropins(name)
        health_units: tuple[str, ...] = ()
        if any(os.path.exists(path) for path in dropins):
            health_units = (_nspawn_files.health_timer_name(name), _nspawn_files.health_service_name(name))
            self._systemctl("stop", *health_units, check=False)  # stopped with the container, unless edited
        if self._written_by_volt(self._settings(name)):
            os.unlink(self._settings(name))
        self._remove_files(name, (self._dropin(name), *dropins), (self._exit_file(name), *self._health_files(name)))
        self._systemctl("daemon-reload")
        self._systemctl("reset-failed", unit, *health_units, check=False)
        _rootfs.remove_aside(self.rootfs(name), name)

    def start(self, name: str) -> None:
        unit = _nspawn_files.unit_name(name)
        self._prepare_network(name)
        self._refresh_settings(name)  # a unit written by an older version runs as this one does
        for path in (self._exit_file(name), self._health_record(name)):
            try:
                os.unlink(path)  # the last run's; this run writes its own
            except FileNotFoundError:
                pass
        # restart_retries counts from this start: forget earlier starts (a unit left failed by
        # the start limit refuses any start until then). Fails harmlessly on an unloaded unit.
        self._systemctl("reset-failed", unit, check=False)
        rc, _out, err = self._systemctl("start", unit, check=False)
        if rc != 0:
            if self._last_exit(name)[0] is not None:
                # The payload itself ended before nspawn reported the container up.
                raise self._start_failure(name, 0)
            logs = "\n".join(self.logs(name, 20))
            raise VoltError(f"starting {unit} failed: {err.strip()}\n{logs}", rc=rc, stderr=err)
        record = self._record(name) or {}
        if not record.get("started") or record.get("stopped_by_volt"):
            fresh = {key: value for key, value in record.items() if key != "stopped_by_volt"}
            if self._write_settings(name, record.get("config", {}), dict(fresh, started=True)):
                self._systemctl("daemon-reload")
            config = record.get("config", {})
            if self.boot_enabled(config, fresh) != self.boot_enabled(config, record):
                self._apply_enablement(name, config, fresh)  # back in the boot (unless-stopped)

    def _prepare_network(self, name: str) -> None:
        """Before a start: give an address to a container that has none yet (made by an older
        version) or whose bridge moved to another subnet, and the host's resolvers to its
        resolv.conf. systemd itself configures host0 after every start (ExecStartPost=)."""
        record = self._record(name) or {}
        config = record.get("config", {})
        if not _nspawn_network.configures_host0(config):
            return
        if self._write_settings(name, config, record):
            self._systemctl("daemon-reload")
        resolv_conf = _nspawn_network.upstream_resolv_conf()
        if resolv_conf:
            _nspawn_network.update_resolv_conf(self.rootfs(name), resolv_conf)

    def stop(self, name: str, timeout: float) -> None:
        """systemctl stop: SIGTERM to every process (see _nspawn_files.render_dropin), SIGKILL after
        `timeout` seconds, which a task may set shorter than the unit's TimeoutStopSec. A stop
        already under way (the unit deactivating) is waited for the same way."""
        unit = _nspawn_files.unit_name(name)
        if self._unit_state(name).get("ActiveState") not in BUSY_STATES:
            return
        # A unit written by an older version stops as this one does; and the record says that
        # this stop was Volt's (the container did not end on its own).
        record = self._refresh_settings(name, stopped_by_volt=True)
        config = (record or {}).get("config", {})
        if record and config.get("enabled") and not self.boot_enabled(config, record):
            self._apply_enablement(name, config, record)  # out of the boot (unless-stopped)
        # --no-block: this waits with its own deadline. A pending stop job also keeps Restart=
        # from firing, and one already queued absorbs this one.
        self._systemctl("stop", "--no-block", unit)
        if not self._wait_stopped(name, timeout):
            self._systemctl("kill", "--kill-who=all", "--signal=SIGKILL", unit, check=False)
            if not self._wait_stopped(name, 10):
                raise VoltError(f"{unit} did not stop, even after SIGKILL")

    def _wait_stopped(self, name: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._unit_state(name).get("ActiveState") in BUSY_STATES:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    def _refresh_settings(self, name: str, stopped_by_volt: bool = False) -> dict | None:
        """Rewrite the files when this version renders them differently, and tell systemd.
        Returns the record written (None when there is none to read)."""
        try:
            record = self._record(name)
        except VoltError:
            return None  # a damaged record: stop the unit as it is
        if record is None:
            return None
        if stopped_by_volt:
            record = dict(record, stopped_by_volt=True)
        if self._write_settings(name, record.get("config", {}), record):
            self._systemctl("daemon-reload")
        return record

    def backend_env(self) -> dict[str, str]:
        # What nspawn itself gives the payload: a process entered with nsenter gets it too.
        return {"container": "systemd-nspawn"}

    def exec_command(
        self, name: str, argv: list[str], *, cwd: str | None = None, user: str | None = None, env: dict | None = None
    ) -> tuple[list[str], dict[str, str]]:
        record = self._record(name)
        leader = self._leader(name) if record is not None else None
        if not leader:
            raise self.cannot_enter(name)
        nsenter = self.runner.which("nsenter", ["/usr/bin", "/bin"])
        if not nsenter:
            raise VoltError("nsenter (util-linux) is needed to run commands in systemd containers")
        config = record.get("config", {})
        rootfs = self.rootfs(name)
        uid, gid, home = self.exec_user(rootfs, user, config)
        directory = cwd or Launch(config).workdir
        resolved = _rootfs.resolve_in_root(rootfs, directory)
        if resolved is None or not os.path.isdir(resolved):
            raise VoltError(f"directory {directory!r} does not exist in container {name}")
        # nsenter opens --wd on the host, before it changes root: a path below the leader's root
        # would be walked by the host, and a guest swapping a directory on it for a symlink could
        # send the command (as root) into a host directory. So nsenter only ever opens the root
        # itself (/proc/PID/root, which the guest cannot swap), and a shell in the container
        # changes into the directory, resolving symlinks in the guest's own view.
        command = [nsenter, "--target", str(leader), "--all", "--root", f"--wd=/proc/{leader}/root"]
        if (uid, gid) != (0, 0):
            command += ["--setuid", str(uid), "--setgid", str(gid)]
        if os.path.relpath(resolved, rootfs) != ".":
            if not _rootfs.is_executable_file(rootfs, "/bin/sh"):
                raise VoltError(f"changing into {directory!r} in container {name} needs /bin/sh in it")
            argv = ["/bin/sh", "-c", 'cd -- "$1" || exit 125; shift; exec "$@"', "volt-exec", directory, *argv]
        environment = {**self.guest_env(name, config, home), **(env or {})}
        return [*self._exec_scope(name), *command, "--", *argv], environment

    def _exec_scope(self, name: str) -> list[str]:
        """systemd-run --scope prefix: what a command entered into the container starts, also
        processes that setsid away, lives in a scope bound to the container's unit, so stopping
        or removing the container ends it, and end_exec() can end it when the command is done."""
        systemd_run = self.runner.which("systemd-run", ["/usr/bin", "/bin"])
        if not systemd_run:
            raise VoltError("systemd-run is needed to run commands in systemd containers")
        self.exec_scope = f"volt-exec-{name}-{os.urandom(4).hex()}.scope"
        unit = _nspawn_files.unit_name(name)
        return [
            systemd_run,
            "--scope",
            "--quiet",
            "--collect",
            f"--unit={self.exec_scope}",
            f"--property=BindsTo={unit}",
            "--property=TimeoutStopSec=5s",
            "--",
        ]

    def end_exec(self) -> None:
        if self.exec_scope:
            self._systemctl("kill", "--signal=SIGKILL", self.exec_scope, check=False)
            self.exec_scope = ""

    def logs(self, name: str, lines: int) -> list[str]:
        if not lines:
            return []
        rc, out, _err = self.runner.run(
            [
                "journalctl",
                "--unit",
                _nspawn_files.unit_name(name),
                "--lines",
                str(lines),
                "--output",
                "cat",
                "--no-pager",
            ],
            check=False,
        )
        return out.splitlines() if rc == 0 else []
