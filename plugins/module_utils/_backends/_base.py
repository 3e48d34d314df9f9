# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The backend seam: primitives only. State machine, comparison and check mode live above it."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod

from ansible_collections.armoredgate.volt.plugins.module_utils._store import Lock


class ContainerRecord:
    """What a backend knows of one container, already reconciled with the live system."""

    def __init__(
        self,
        name: str,
        backend: str,
        status: str,  # created | running | stopped | corrupt
        *,
        config: dict | None = None,
        pid: int | None = None,
        rootfs: str | None = None,
        os: str | None = None,
        command: list | None = None,
        created_at: str | None = None,
        started_at: str | None = None,
        stopped_at: str | None = None,
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

    def __init__(self, runner, data_dir: str | None, settings: dict) -> None:
        self.runner = runner
        self.data_dir = data_dir or default_data_dir()
        self.settings = settings

    def lock(self, name: str) -> Lock:
        """Exclusive lock for changing one container; concurrent runs wait for each other."""
        return Lock(os.path.join(self.data_dir, "locks"), name)

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

    @abstractmethod
    def stop(self, name: str, timeout: float) -> None:
        """Stop a running container: SIGTERM, then SIGKILL after timeout seconds."""

    @abstractmethod
    def logs(self, name: str, lines: int) -> list[str]:
        """The last `lines` lines of the container's output."""
