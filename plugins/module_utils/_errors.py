# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one exception type that lower layers raise; only a module's main() turns it into fail_json."""

from __future__ import annotations


class VoltError(Exception):
    """A failure with a message for the user and optional details (cmd, rc, stderr, path, ...)."""

    def __init__(self, msg: str, **details: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class CorruptRecord(VoltError):
    """A container whose own records cannot be read or make no sense: listed as corrupt, and
    removed by state=absent with force (nothing else of it can be trusted)."""


class ForeignRecord(VoltError):
    """A file at a container's path that another tool wrote: never listed, changed or removed."""
