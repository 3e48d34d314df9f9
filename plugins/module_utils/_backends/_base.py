# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend seam: primitives only. State machine, comparison and check mode live above it."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import Launch
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import ForeignRecord, VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _records, _rootfs
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import (
    absolute_path,
    split_port,
    validate_name,
)

if TYPE_CHECKING:
    from ansible_collections.armoredgate.volt.plugins.module_utils._types import CommandRunner, Status

GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def remapped_ports(config: dict) -> list[str]:
    """The ports that map a host port to a different container port ("8080:80")."""
    return [port for port in config.get("ports") or [] if split_port(port)[0] != split_port(port)[1]]


class ContainerRecord:
    """What a backend knows of one container, already reconciled with the live system."""

    def __init__(
        self,
        name: str,
        backend: str,
        status: Status,
        *,
        config: dict | None = None,
        pid: int | None = None,
        rootfs: str | None = None,
        os: str | None = None,
        command: list | None = None,
        created_at: str | None = None,
        started_at: str | None = None,
        stopped_at: str | None = None,
        addresses: list | None = None,
        ip_address: str | None = None,
        exit_code: int | None = None,
        finished_at: str | None = None,
        restart_count: int = 0,
        exited: bool = False,
        health: dict | None = None,
    ) -> None:
        self.name = name
        self.backend = backend
        self.status = status
        self.config = config or {}
        self.pid = pid
        self.rootfs = rootfs
        self.os = os
        self.command = command
        self.created_at = created_at
        self.started_at = started_at
        self.stopped_at = stopped_at
        self.addresses = addresses or []
        # The IPv4 address of a running container's own network (a bridge), else None.
        self.ip_address = ip_address
        # How the last run ended (None while it runs, or before the first): its exit status
        # (128+N for signal N) and when; exited: it ended on its own, not stopped by a stop.
        self.exit_code = exit_code
        self.finished_at = finished_at
        self.exited = exited
        # Restarts by the restart policy since the last start.
        self.restart_count = restart_count
        # A running container's health check: status (starting, healthy, unhealthy),
        # failing_streak, last_exit_code, last_output; None without a check.
        self.health = health

    @property
    def running(self) -> bool:
        return self.status == "running"

    def to_result(self) -> dict:
        result = dict(vars(self))
        result["image"] = self.config.get("image")
        return result


def default_data_dir() -> str:
    """/var/lib/volt for root, ${XDG_DATA_HOME:-~/.local/share}/volt for everyone else."""
    if os.geteuid() == 0:
        return "/var/lib/volt"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "volt")


class Backend(ABC):
    """Primitives a container engine must provide. Each raises VoltError on failure."""

    name = ""

    def __init__(self, runner: CommandRunner, data_dir: str | None, settings: dict) -> None:
        self.runner = runner
        self.data_dir = absolute_path(data_dir, "data_dir") if data_dir else default_data_dir()
        self.settings = settings

    # -- where containers live -------------------------------------------------------------------
    @property
    def containers_dir(self) -> str:
        """<data_dir>/containers: one directory per container, named after it."""
        return os.path.join(self.data_dir, "containers")

    def container_dir(self, name: str) -> str:
        return os.path.join(self.containers_dir, validate_name(name))

    @abstractmethod
    def rootfs(self, name: str) -> str:
        """The container's root filesystem on the host."""

    def _container_names(self) -> list[str]:
        """The names of the directories in containers_dir that may be containers: not hidden
        (staging and removal directories), not stray files, only names Volt gives."""
        try:
            entries = sorted(os.listdir(self.containers_dir))
        except FileNotFoundError:
            return []
        names = []
        for entry in entries:
            if entry.startswith(".") or not os.path.isdir(os.path.join(self.containers_dir, entry)):
                continue
            try:
                names.append(validate_name(entry))
            except VoltError:
                continue  # lost+found, a user's own directory
        return names

    @abstractmethod
    def stored_configs(self) -> dict[str, dict]:
        """Each container's stored options, by name, from this backend's own records only (no
        live state; unreadable records are left out): what the image store needs to know
        which containers use an image."""

    def _survey(self, names: list[str]) -> list[ContainerRecord]:
        """The records of the containers named: one that cannot be read is listed as corrupt, so
        one broken container never hides the others; names Volt never gives (lost+found, a
        user's own directory) and other tools' containers are skipped."""
        records = []
        for name in names:
            try:
                validate_name(name)
            except VoltError:
                continue
            try:
                record = self.inspect(name)
            except ForeignRecord:
                continue
            except VoltError as exc:  # a CorruptRecord, or a record that cannot be read at all
                record = self._corrupt(name, exc.msg)
            except (OSError, ValueError) as exc:
                record = self._corrupt(name, f"cannot read the records of container {name}: {exc}")
            # A record placing its rootfs elsewhere belongs to another data_dir.
            if record is not None and record.rootfs == self.rootfs(name):
                records.append(record)
        return records

    def _corrupt(self, name: str, error: str) -> ContainerRecord:
        return ContainerRecord(
            name=name, backend=self.name, status="corrupt", rootfs=self.rootfs(name), config={"error": error}
        )

    def guest_env(self, name: str, config: dict, home: str = "/root") -> dict[str, str]:
        """A container's whole environment: a clean base (nothing of the module's leaks in), what
        this backend adds, then the image's env, the user's env and secret_env."""
        return {
            "HOME": home,
            "PATH": GUEST_PATH,
            "TERM": "xterm",
            "CONTAINER_NAME": name,
            **self.backend_env(),
            **Launch(config).env,
            **self.read_secrets(name),
        }

    def backend_env(self) -> dict[str, str]:
        """Variables this backend sets in every container."""
        return {}

    def lock(self, name: str) -> _records.Lock:
        """Exclusive lock for changing one container; concurrent runs wait for each other."""
        return _records.Lock(os.path.join(self.data_dir, "locks"), name)

    def default_config(self) -> dict:
        """Config values this backend chooses for a new container when the user gives none."""
        return {}

    def _images(self):
        from ansible_collections.armoredgate.volt.plugins.module_utils._images._image_store import ImageStore

        return ImageStore(self.data_dir)

    def image_digest(self, image: str) -> str | None:
        """The digest the store records for the image (None for directory images)."""
        return self._images().digest(image)

    def image_config(self, image: str) -> dict | None:
        """The image's config as the store keeps it (None for images without one)."""
        return self._images().config(image)

    def image_path(self, image: str) -> str:
        """The image's tree in the store (both backends share it)."""
        store = self._images()
        path = store.existing_tree(image)
        if path is None:
            raise VoltError(
                f"image {image!r} is not in the image store {store.images} (add it with volt_image, or use rootfs)",
                image=image,
            )
        return path

    def _new_container(self, name: str, config: dict, *private: str) -> tuple[str, str]:
        """(source tree, container directory) for a container about to be created: the data
        dir, the containers dir and any other directory given made private, and the container
        not there yet. The backend builds it with _rootfs.staged and renames it into place."""
        source = self.source(name, config)
        final = self.container_dir(name)
        # Nobody but the owner may reach the trees (their setuid files, their secrets).
        for directory in (self.data_dir, self.containers_dir, *private):
            _records.private_dir(directory)
        if os.path.lexists(final):
            raise VoltError(f"container {name} already exists at {final}", path=final)
        return source, final

    def source(self, name: str, config: dict) -> str:
        """Where a new container's root filesystem comes from: its image, or the rootfs directory."""
        source = self.image_path(config["image"]) if config.get("image") else config.get("rootfs")
        if not source:
            raise VoltError(f"container {name} does not exist: give image or rootfs to create it")
        if not os.path.isdir(source):
            raise VoltError(f"rootfs source {source} is not a directory", path=source)
        return source

    @staticmethod
    def check_start(root: str, config: dict, check_ports: bool = True) -> Launch:
        """What the container will run, after failing before a start that could not do what the
        config says: a published host port already in use, a program that is not an executable in
        the root filesystem, a workdir that is not a directory there, a user the container does
        not know, a volume whose host path is missing (it is not created, unlike Docker: a typo
        must not become an empty bind)."""
        launch = Launch(config, root)
        from ansible_collections.armoredgate.volt.plugins.module_utils._backends import _host_ports

        # (Not when the container is running now: its own sockets hold its ports until it stops.)
        taken = _host_ports.taken(config.get("ports") or []) if check_ports else []
        if taken:
            raise VoltError("cannot publish the container's ports: " + "; ".join(taken))
        resolved = _rootfs.resolve_in_root(root, launch.workdir)
        if resolved is None or not os.path.isdir(resolved):
            raise VoltError(f"workdir {launch.workdir!r} is not a directory in the container's root filesystem")
        if not launch.as_root:
            _rootfs.resolve_user(root, launch.user)
        for volume in config.get("volumes") or []:
            host = volume.split(":")[0]
            if not os.path.exists(host):
                raise VoltError(f"volume {volume!r}: the host path {host} does not exist", path=host)
        if not launch.argv:
            looked_for = ", ".join(candidate[0] for candidate in _rootfs.ENTRYPOINT_CANDIDATES)
            raise VoltError(
                f"nothing to run: the image names no program and none was found (looked for {looked_for}); set command"
            )
        program = launch.argv[0]
        search = launch.env.get("PATH", GUEST_PATH)
        if not _rootfs.find_program(root, program, search, launch.workdir):
            raise VoltError(
                f"{launch.origin} {program!r} is not an executable file in the container's root filesystem "
                f"(searched PATH {search} for a bare name)"
            )
        return launch

    def check_config(self, name: str, config: dict, actions: list[str]) -> None:  # noqa: B027 - optional hook
        """Refuse what this backend cannot do (option values, a missing program) before `actions` run."""

    @abstractmethod
    def inspect(self, name: str, persist: bool = False) -> ContainerRecord | None:
        """The container's record, or None if it does not exist.

        A recorded 'running' whose process is gone reads as 'stopped'; persist=True also
        writes that correction back.
        """

    @abstractmethod
    def list(self) -> list[ContainerRecord]:
        """Every container of this backend under data_dir."""

    @abstractmethod
    def create(self, name: str, config: dict) -> None:
        """Create a stopped container from config (all or nothing)."""

    @abstractmethod
    def remove(self, name: str, stop_timeout: float) -> None:
        """Stop the container if it runs, then delete it with its rootfs."""

    @abstractmethod
    def start(self, name: str) -> None:
        """Start a created or stopped container."""

    def confirm_running(self, name: str, grace: float) -> None:
        """Watch a container just started for `grace` seconds: VoltError with its exit code and
        the end of its log if it exits (or its restart policy restarts it) meanwhile."""
        import time

        if grace <= 0:
            return
        deadline = time.monotonic() + grace
        baseline = None
        while True:
            record = self.inspect(name, persist=True)
            if baseline is None and record is not None:
                baseline = record.restart_count
            if record is None or not record.running or record.restart_count != baseline:
                raise self._start_failure(name, grace)
            if time.monotonic() >= deadline:
                return
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def wait_healthy(self, name: str, timeout: float) -> None:
        """state=healthy: wait until the health check passes. VoltError with the last probe's
        output if it has not within timeout, or if the container stops meanwhile."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            record = self.inspect(name)
            if record is None or not record.running:
                raise VoltError(f"container {name} is not running, so it cannot become healthy")
            health = record.health
            if health is None or health["status"] == "healthy":
                return
            if time.monotonic() >= deadline:
                output = health.get("last_output") or "(no output)"
                raise VoltError(
                    f"container {name} is {health['status']}, not healthy, after {timeout:g} s "
                    f"(failing streak {health['failing_streak']}, last probe exit code "
                    f"{health['last_exit_code']}). The last probe's output:\n{output}",
                    health=health,
                )
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _start_failure(self, name: str, grace: float) -> VoltError:
        import time

        record = None
        for _attempt in range(20):  # the exit status and the last lines may take a moment to land
            record = self.inspect(name, persist=True)
            if record is None or (not record.running and record.exit_code is not None):
                break
            time.sleep(0.1)
        code = record.exit_code if record is not None else None
        lines = self.logs(name, 20)
        how = f"exited with code {code}" if code is not None else "stopped running"
        if record is not None and record.running and record.restart_count:
            how = f"was restarted {record.restart_count} time(s) by its restart policy (last exit code {code})"
        tail = "\n".join(lines) if lines else "(no output)"
        when = f"within {grace:g} s of its start" if grace else "as it started"
        return VoltError(
            f"container {name} {how} {when}, so it is not running. The last lines of its output:\n{tail}",
            rc=code,
            log=lines,
        )

    @abstractmethod
    def stop(self, name: str, timeout: float) -> None:
        """Stop a running container: SIGTERM, then SIGKILL after timeout seconds."""

    def update(self, name: str, config: dict) -> None:
        """Apply options whose change needs no new container (limits, restart policy, enablement)."""
        raise VoltError(f"the {self.name} backend cannot change container {name}'s settings in place")

    @abstractmethod
    def logs(self, name: str, lines: int) -> list[str]:
        """The last `lines` lines of the container's output."""

    @abstractmethod
    def exec_command(
        self, name: str, argv: list[str], *, cwd: str | None = None, user: str | None = None, env: dict | None = None
    ) -> tuple[list[str], dict[str, str]]:
        """The host command line and its whole environment that run argv inside the running
        container `name`, in cwd (default: the container's workdir), as user (default: root),
        with the container's env and then env. VoltError when the container is not running."""

    # -- secrets ---------------------------------------------------------------------------------
    # secret_env values live only in <data_dir>/secrets/<name>.json (0600 in a 0700 directory);
    # records, results and diffs carry a keyed hash of each, so a change is still seen.
    def _secrets_dir(self) -> str:
        return os.path.join(self.data_dir, "secrets")

    def secret_digests(self, values: dict[str, str], create_key: bool) -> dict[str, str]:
        """HMAC-SHA256 of each KEY=value under this data dir's private key.

        Without a key yet (and create_key False, as in check mode) a throwaway key is used: the
        digests then match nothing, which is right, since no container can hold one yet.
        """
        import hashlib
        import hmac

        key = self._secret_key(create_key)
        return {
            name: "hmac-sha256:" + hmac.new(key, f"{name}={value}".encode(), hashlib.sha256).hexdigest()
            for name, value in sorted(values.items())
        }

    def _secret_key(self, create: bool) -> bytes:
        path = os.path.join(self._secrets_dir(), ".key")
        try:
            with open(path, "rb") as handle:
                key = handle.read()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        key = os.urandom(32)
        if create:
            _records.private_dir(self.data_dir)
            _records.private_dir(self._secrets_dir())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key)
        return key

    def check_secrets(self, values: dict[str, str]) -> None:  # noqa: B027 - optional hook
        """Refuse secret_env values this backend cannot pass (never showing them)."""

    def write_secrets(self, name: str, values: dict[str, str]) -> None:
        """Keep the clear secret_env values of container name (none: remove the file)."""
        path = os.path.join(self._secrets_dir(), validate_name(name) + ".json")
        if not values:
            self.remove_secrets(name)
            return
        _records.private_dir(self.data_dir)
        _records.private_dir(self._secrets_dir())
        _records.write_json(path, values)

    def read_secrets(self, name: str) -> dict[str, str]:
        path = os.path.join(self._secrets_dir(), validate_name(name) + ".json")
        try:
            values = _records.read_json(path)
        except FileNotFoundError:
            return {}
        return {str(key): str(value) for key, value in values.items()}

    def remove_secrets(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self._secrets_dir(), validate_name(name) + ".json"))
        except FileNotFoundError:
            pass

    # The systemd backend's scope of the last exec_command (see end_exec).
    exec_scope = ""
    # Whether exec_command takes status_fd: the command's exit status is written there as it
    # ends, because the host process (proot) outlives it while its background children run.
    exec_reports_status = False
    # Whether the last exec_command's command line does so (proot: when the guest has /bin/sh).
    exec_detached = False

    def end_exec(self) -> None:  # noqa: B027 - optional hook
        """End what the last exec_command's command left behind, once it has exited or timed out
        (background children, processes that left its session)."""

    def cannot_enter(self, name: str) -> VoltError:
        """The error for entering a container that does not exist or does not run."""
        record = self.inspect(name)
        if record is None:
            return VoltError(f"container {name} does not exist in {self.data_dir} (backend {self.name})")
        return VoltError(f"container {name} is not running (status: {record.status}); start it first")

    def exec_user(self, rootfs: str, user: str | None, config: dict | None = None) -> tuple[int, int, str]:
        """(uid, gid, home) for exec_command's user, read from the container's /etc/passwd: the
        user asked for, else the container's own (its user option, else its image's), else root."""
        if user is None and config is not None:
            user = Launch(config).user
        return _rootfs.resolve_user(rootfs, user) if user is not None else (0, 0, "/root")
