# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Choose a backend: auto | proot | systemd."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import Backend
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ansible_collections.armoredgate.volt.plugins.module_utils._types import CommandRunner


def systemd_usable(runner: CommandRunner) -> bool:
    """systemd is PID 1, systemd-nspawn is installed and we are root."""
    return os.path.isdir("/run/systemd/system") and os.geteuid() == 0 and runner.which("systemd-nspawn") is not None


def backend_name(requested: str, runner: CommandRunner) -> str:
    if requested != "auto":
        return requested
    return "systemd" if systemd_usable(runner) else "proot"


def make_backend(runner: CommandRunner, options: Mapping, *, check_mode: bool = False) -> Backend:
    """The one way to build a backend, from a module's params, a plugin's options or a helper's
    arguments (a mapping): backend (auto, proot or systemd; auto when not given), data_dir,
    proot_path and allow_unsafe_proot. A caller without allow_unsafe_proot (the boot hook, the
    connection plugin) enters what a module already started, and nothing is refused there."""
    settings = {
        "proot_path": options.get("proot_path"),
        "allow_unsafe_proot": options.get("allow_unsafe_proot"),
        "check_mode": check_mode,  # the proot probe's cache is not written in check mode
    }
    return select_backend(options.get("backend") or "auto", runner, options.get("data_dir"), settings)


def every_backend(runner: CommandRunner, data_dir: str | None) -> list[Backend]:
    """One of each backend on data_dir, to read their records (not to run anything)."""
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._proot import ProotBackend
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._systemd import SystemdBackend

    return [ProotBackend(runner, data_dir, {}), SystemdBackend(runner, data_dir, {})]


def select_backend(requested: str, runner: CommandRunner, data_dir: str | None, settings: dict) -> Backend:
    # Each backend is imported only when chosen: a no-op run should not pay for the other.
    name = backend_name(requested, runner)
    if name == "proot":
        from ansible_collections.armoredgate.volt.plugins.module_utils._backends._proot import (
            ProotBackend,
        )

        return ProotBackend(runner, data_dir, settings)
    if os.geteuid() != 0:
        raise VoltError("the systemd backend manages system units and needs root (use become: true)")
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._systemd import (
        SystemdBackend,
    )

    return SystemdBackend(runner, data_dir, settings)
