#!/usr/bin/python
# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volt_container_info
short_description: List and inspect Volt containers
version_added: 0.1.0
description:
  - Returns one container, or every container of a backend, with its status reconciled against
    the live process table (a record that says running for a dead or reused pid reads as
    stopped), and optionally the last lines of its log.
  - Never changes anything, not even stale records.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - armoredgate.volt.volt
  - armoredgate.volt.volt.attributes
attributes:
  check_mode:
    support: full
    details: This module never changes anything.
  diff_mode:
    support: none
options:
  name:
    description:
      - Name of the container to inspect. When not set, all containers are listed.
    type: str
  log_lines:
    description:
      - How many of the last lines of each container's log to return in RV(containers[].logs).
      - V(0) returns no logs.
    type: int
    default: 0
seealso:
  - module: armoredgate.volt.volt_container
"""

EXAMPLES = r"""
- name: Inspect one container with the end of its log
  armoredgate.volt.volt_container_info:
    name: web
    log_lines: 20
  register: web

- name: Fail unless it runs
  ansible.builtin.assert:
    that: web.exists and web.containers[0].status == 'running'

- name: List every container on the host
  armoredgate.volt.volt_container_info:
  register: all_containers
"""

RETURN = r"""
exists:
  description: Whether any container matched.
  returned: always
  type: bool
  sample: true
containers:
  description:
    - The matching containers. See RV(armoredgate.volt.volt_container#module:container) for the
      keys. A container whose records cannot be read has RV(containers[].status=corrupt) and the
      reason in C(config.error).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    status:
      description: V(created), V(running), V(stopped) or V(corrupt).
      type: str
    ip_address:
      description:
        - The IPv4 address of a running container on a bridge (systemd backend), else V(null).
        - Published ports answer on the host's non-loopback addresses; this address reaches the
          container directly from the host.
      type: str
    exit_code:
      description: How its last run ended (128+N for signal N), V(null) while it runs.
      type: int
      version_added: 0.2.0
    finished_at:
      description: When its last run ended (RFC 3339, UTC).
      type: str
      version_added: 0.2.0
    exited:
      description: Whether its last run ended on its own, not by a stop.
      type: bool
      version_added: 0.2.0
    restart_count:
      description: Restarts by its restart policy since its last start.
      type: int
      version_added: 0.2.0
    health:
      description:
        - Its health check, when it runs and has one (see
          RV(armoredgate.volt.volt_container#module:container.health)).
      type: dict
      version_added: 0.2.0
    logs:
      description: The last O(log_lines) lines of the container's log.
      type: list
      elements: str
      returned: when O(log_lines) > 0
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armoredgate.volt.plugins.module_utils._module_runs import (
    container_info_module_spec,
    run_container_info,
)


def main():
    module = AnsibleModule(**container_info_module_spec())
    run_container_info(module)


if __name__ == "__main__":
    main()
