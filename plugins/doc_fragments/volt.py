# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options and attributes shared by the armoredgate.volt modules."""

    DOCUMENTATION = r"""
options:
  backend:
    description:
      - Which container engine manages the container.
      - V(auto) picks V(systemd) where systemd is PID 1, C(systemd-nspawn) is installed and the
        module runs as root, and V(proot) everywhere else (Termux, Android, Linux without systemd,
        non-root users).
    type: str
    choices: [auto, proot, systemd]
    default: auto
  data_dir:
    description:
      - Directory holding the Volt store (C(containers/), C(images/), C(tmp/)).
      - Defaults to C(/var/lib/volt) for root and to C(${XDG_DATA_HOME:-~/.local/share}/volt) for
        other users.
    type: path
  proot_path:
    description:
      - Path of the proot binary.
      - When not set, proot is looked up on E(PATH), then in C($PREFIX/bin) (Termux),
        C(/data/local/tmp/proot) and C(~/proot).
      - Its features (C(--kill-on-exit), C(--link2symlink), port mapping) are read from its
        C(--help), and only those it has are used.
    type: path
"""

    ATTRIBUTES = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
  idempotent:
    description: When run twice with the same arguments, the second run reports no change.
    support: full
"""
