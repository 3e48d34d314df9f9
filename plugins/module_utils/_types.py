# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shapes the layers exchange, for readers and type checkers. Imported only under
TYPE_CHECKING: nothing here runs on a managed node."""

from __future__ import annotations

from typing import Any, Literal, Optional, Protocol

# What a container is, as ContainerRecord.status says.
Status = Literal["created", "running", "stopped", "corrupt"]
# What volt_container does, as its result's actions say (in this order of a plan).
Action = Literal["remove", "create", "update", "stop", "start"]
# How an option's drift is applied (_options.Option.change).
Change = Literal["recreate", "restart", "update"]
# What volt_container is asked for.
State = Literal["present", "started", "healthy", "stopped", "restarted", "absent"]


class CommandRunner(Protocol):
    """What runs programs for the backends (_runner.Runner, or a test's double)."""

    def run(
        self,
        argv: list[str],
        check: bool = True,
        data: Optional[str] = None,
        env: Optional[dict[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> tuple[int, str, str]: ...

    def execute(
        self,
        argv: list[str],
        env: dict[str, str],
        stdin: Optional[bytes] = None,
        timeout: Optional[float] = None,
        *,
        kill_on_exit: bool = False,
        on_exit: Any = None,
    ) -> tuple[int, bytes, bytes, bool]: ...

    def which(self, program: str, extra_dirs: Optional[list[str]] = None) -> Optional[str]: ...

    def warn(self, msg: str) -> None: ...


class Module(Protocol):
    """The part of AnsibleModule the collection's module code uses."""

    params: dict[str, Any]
    check_mode: bool
    _diff: bool

    def warn(self, warning: str) -> None: ...

    def fail_json(self, msg: str, **kwargs: Any) -> None: ...

    def exit_json(self, **kwargs: Any) -> None: ...

    def run_command(self, args: list[str], **kwargs: Any) -> tuple[int, str, str]: ...
