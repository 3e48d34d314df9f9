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
  allow_unsafe_proot:
    description:
      - Run a proot that does not translate paths correctly anyway.
      - Before a container starts or a command runs in one, the proot backend checks that the host's
        C(stat) and C(ls) under proot see the files of the container's root and not the host's
        (see M(armoredgate.volt.volt_proot_info)). Debian's proot 5.1.0 (also Ubuntu's) fails the
        check - programs in its guests see host files at the same paths, and miss files of
        the container. Such a proot is refused, with an error that names it and the problem found,
        unless this is V(true).
      - Get a good proot instead where you can - proot 5.2 or later, or Termux's proot. On Debian
        and Ubuntu the P(armoredgate.volt.proot#role) role builds proot 5.4 from pinned source
        when the distribution's fails the check, or installs a binary you supply with
        C(proot_binary_src) or C(proot_binary_url); point O(proot_path) at it.
      - The verdict is kept per proot binary (path, modification time and size) in
        C(<data_dir>/proot-probe.json), so the check runs once per binary; check mode does not
        write it. With V(true) the check is not run.
      - Only the proot backend uses it; M(armoredgate.volt.volt_container_info) never runs proot
        and ignores it.
    type: bool
    default: false
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
