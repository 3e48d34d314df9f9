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
  - Never changes anything; the empty root is a temporary directory removed before it returns.
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
    kernel_release_safe:
      description: The same check passes with C(-k) and the guest sees the emulated release.
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

from ansible_collections.armoredgate.volt.plugins.module_utils._modules import proot_info_module_spec, run_proot_info


def main():
    module = AnsibleModule(**proot_info_module_spec())
    run_proot_info(module)


if __name__ == "__main__":
    main()
