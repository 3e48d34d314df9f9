#!/usr/bin/python
# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volt_proot_info
short_description: Find proot on a host and check that it really works
version_added: 0.1.0
description:
  - Finds the proot binary the proot backend would use, reads its version and features, and runs
    a host shell under it in an empty root directory (the host's program directories bound in),
    which must write a file into that root. This catches proot builds that start but do not
    translate paths.
  - Runs the same check with C(-k) (kernel release emulation), which some proot builds break
    (Debian's 5.1.0 fails every C(stat) with it); RV(proot.kernel_release_safe) says whether the
    O(armoredgate.volt.volt_container#module:kernel_release) option can be used.
  - Checks that proot translates paths for every way a program looks at a file. The host's C(stat)
    (and C(ls -d)), which call C(statx), run in the same kind of root and must see a file that
    exists only in that root and must not see one that exists only on the host (with and without
    C(-k)). Debian's proot 5.1.0 passes C(statx) to the kernel untranslated, so programs in its
    guests see host files; RV(proot.path_translation_safe) says whether the path translation is
    right, and the modules refuse a proot where it is not unless
    O(armoredgate.volt.volt_container#module:allow_unsafe_proot=true).
  - Never changes anything; the empty roots are temporary directories removed before it returns.
    The modules keep their verdict per proot binary in C(<data_dir>/proot-probe.json); this
    module always probes afresh and does not read or write that file.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - armoredgate.volt.volt.attributes
attributes:
  check_mode:
    support: full
    details: This module never changes anything.
  diff_mode:
    support: none
options:
  proot_path:
    description:
      - Path of the proot binary.
      - When not set, proot is looked up on E(PATH), then in C($PREFIX/bin) (Termux),
        C(/data/local/tmp/proot) and C(~/proot).
    type: path
  data_dir:
    description:
      - The Volt data directory the host will use, returned as RV(proot.data_dir).
      - Defaults to C(/var/lib/volt) for root and to C(${XDG_DATA_HOME:-~/.local/share}/volt) for
        other users.
    type: path
notes:
  - Fails when no proot binary is found. A proot that is found but does not work is reported
    with RV(proot.works=false) and the reason in RV(proot.problem).
  - The P(armoredgate.volt.proot#role) role installs proot and runs this check.
seealso:
  - module: armoredgate.volt.volt_container
"""

EXAMPLES = r"""
- name: Check the host's proot
  armoredgate.volt.volt_proot_info:
  register: volt_proot

- name: Refuse hosts whose proot does not work
  ansible.builtin.assert:
    that: volt_proot.proot.works
    fail_msg: "{{ volt_proot.proot.path }}: {{ volt_proot.proot.problem }}"

- name: Refuse hosts whose proot lets guests see host files
  ansible.builtin.assert:
    that: volt_proot.proot.path_translation_safe
    fail_msg: "{{ volt_proot.proot.path }}: {{ volt_proot.proot.path_translation_problem }}"

- name: A container with an emulated kernel release, only where proot supports it
  armoredgate.volt.volt_container:
    name: legacy
    image: debian
    kernel_release: "{{ '5.15.0' if volt_proot.proot.kernel_release_safe else omit }}"
"""

RETURN = r"""
proot:
  description: What was found.
  returned: success
  type: dict
  contains:
    path:
      description: The proot binary.
      type: str
      sample: /data/data/com.termux/files/usr/bin/proot
    version:
      description: Its version, from C(proot -V); V(null) when it prints none.
      type: str
      sample: 5.1.0
    features:
      description: Features read from C(proot --help).
      type: dict
      contains:
        kill_on_exit:
          description: C(--kill-on-exit) is available (the backend uses it).
          type: bool
        link2symlink:
          description: C(--link2symlink) is available (used on Android, where hard links are forbidden).
          type: bool
        port_mapping:
          description: C(-p HOST:GUEST) port mapping is available.
          type: bool
    works:
      description: A command ran under proot in an empty root and wrote its file there.
      type: bool
      sample: true
    problem:
      description: Why RV(proot.works) is false (proot's error output); empty when it works.
      type: str
      sample: ""
    path_translation_safe:
      description:
        - The host's C(stat) and C(ls) under proot see a file that exists only in the guest's root
          and do not see a file that exists only on the host (proot translates the paths of
          C(statx) too).
        - V(false) also when the check could not run; RV(proot.path_translation_problem) says why.
        - Without it, programs in a guest see host files at the same paths (Debian's proot
          5.1.0); use proot 5.2 or later, or Termux's proot.
      type: bool
      sample: true
    path_translation_problem:
      description:
        - What went wrong in the path translation check, naming the program and the path it did or
          did not see; empty when RV(proot.path_translation_safe) is V(true).
      type: str
      sample: "stat does not see /volt-guest-only-*, a file of the guest's root; ..."
    path_translation_tools:
      description:
        - The host programs the path translation check ran, from V(stat) and V(ls) (C(ls -d)).
        - Without C(stat) on the host, the check runs with C(ls) alone and the module warns.
      type: list
      elements: str
      sample: [stat, ls]
    kernel_release_safe:
      description:
        - The same check passes with C(-k), the guest sees the emulated release, and the path
          translation check passes with C(-k) too.
      type: bool
      sample: false
    android:
      description: The host is Android (Termux, or an adb shell).
      type: bool
    termux:
      description: The module runs in Termux (E(TERMUX_VERSION) is set).
      type: bool
    data_dir:
      description: The Volt data directory for this user (O(data_dir) or its default).
      type: str
      sample: /data/data/com.termux/files/home/.local/share/volt
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armoredgate.volt.plugins.module_utils._module_runs import (
    proot_info_module_spec,
    run_proot_info,
)


def main():
    module = AnsibleModule(**proot_info_module_spec())
    run_proot_info(module)


if __name__ == "__main__":
    main()
