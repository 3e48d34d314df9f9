# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Runs programs for the collection: argv lists only, never a shell string."""

from __future__ import annotations

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError


class Runner:
    """Thin wrapper over AnsibleModule.run_command that raises VoltError on failure."""

    def __init__(self, module) -> None:
        self._module = module

    def run(
        self,
        argv: list[str],
        check: bool = True,
        data: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> tuple[int, str, str]:
        argv = [str(arg) for arg in argv]
        try:
            rc, out, err = self._module.run_command(
                argv, data=data, environ_update=env, cwd=cwd, handle_exceptions=False
            )
        except OSError as exc:  # the program could not be run at all
            raise VoltError(f"could not run {argv[0]}: {exc}", cmd=argv) from None
        if check and rc != 0:
            raise VoltError(
                "%s failed with exit code %d: %s" % (argv[0], rc, (err or out).strip()),
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
            )
        return rc, out, err

    def which(self, program: str, extra_dirs: list[str] | None = None) -> str | None:
        return self._module.get_bin_path(program, required=False, opt_dirs=extra_dirs or [])

    def warn(self, msg: str) -> None:
        self._module.warn(msg)
