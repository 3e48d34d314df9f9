# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Choose a backend: auto | proot | systemd."""

from __future__ import annotations

import os

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import Backend
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError


def systemd_usable(runner) -> bool:
    """systemd is PID 1, systemd-nspawn is installed and we are root."""
    return os.path.isdir("/run/systemd/system") and os.geteuid() == 0 and runner.which("systemd-nspawn") is not None


def backend_name(requested: str, runner) -> str:
    if requested != "auto":
        return requested
    return "systemd" if systemd_usable(runner) else "proot"


def select_backend(requested: str, runner, data_dir: str | None, settings: dict) -> Backend:
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
