# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start the enabled proot containers of a data dir: the boot hook the proot role installs.

proot hosts have no service manager to start containers at boot (Termux:Boot only runs
scripts), so the role copies these module_utils next to the data dir and the hook runs

    python3 -m ansible_collections.armoredgate.volt.plugins.module_utils._containers._boot --data-dir DIR

which starts each container through the same backend code as volt_container does.
"""

from __future__ import annotations

import argparse
import sys

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._proot import ProotBackend
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner


def _kept_stopped(record) -> bool:
    """restart_policy unless-stopped: a container stopped by the module stays stopped at boot."""
    stopped_by_volt = record.status == "stopped" and not record.exited
    return record.config.get("restart_policy") == "unless-stopped" and stopped_by_volt


def start_enabled(backend) -> tuple[list[str], list[str]]:
    """Start every enabled container that is not running, but for one kept stopped (see
    _kept_stopped); (started names, error messages)."""
    started, errors = [], []
    for record in backend.list():
        if record.status == "corrupt" or not record.config.get("enabled"):
            continue
        try:
            with backend.lock(record.name):  # an Ansible run may be acting on it right now
                current = backend.inspect(record.name, persist=True)
                if current is not None and current.status != "running" and not _kept_stopped(current):
                    backend.start(record.name)
                    started.append(record.name)
        except VoltError as exc:
            errors.append(f"{record.name}: {exc.msg}")
    return started, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="volt-boot", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="the Volt data directory (default: the user's)")
    parser.add_argument("--proot-path", help="the proot binary (default: looked up like the modules do)")
    args = parser.parse_args(argv)
    # Built directly, not by _select.make_backend: the hook is copied to the device with only the
    # proot backend's files (roles/proot/vars/main.yml).
    backend = ProotBackend(Runner(), args.data_dir, {"proot_path": args.proot_path})
    started, errors = start_enabled(backend)
    for name in started:
        sys.stdout.write(f"volt-boot: started {name}\n")
    for error in errors:
        sys.stderr.write(f"volt-boot: {error}\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
