#!/usr/bin/python
# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: volt_exec
short_description: Run a command inside a running Volt container
version_added: 0.1.0
description:
  - Runs one command in a running container and returns its exit code and output.
  - proot backend - a new proot process on the container's root filesystem, with the container's
    binds, environment and proot options (the same command line the container was started with).
  - systemd backend - C(nsenter) into all namespaces, the root and the working directory of the
    container's leader process, with a clean environment (the container's C(env), then O(env)).
  - The command is never run by a shell. For shell syntax, ask for one -
    O(argv=[/bin/sh, -c, "..."]).
  - Fails when the command exits non-zero (use C(failed_when) to accept other codes), when it runs
    longer than O(timeout), and when the container does not exist or is not running.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - armoredgate.volt.volt
  - armoredgate.volt.volt.attributes
attributes:
  check_mode:
    support: full
    details:
      - A command cannot be run in check mode, so it is predicted to change something
        (C(changed=true)), unless O(creates) or O(removes) decide that it would not run, in
        which case the prediction is exact.
  diff_mode:
    support: none
  idempotent:
    support: partial
    details: Only with O(creates) or O(removes); otherwise every run runs the command and reports a change.
options:
  name:
    description: Name of the container.
    type: str
    required: true
  argv:
    description: The command and its arguments, as a list. Mutually exclusive with O(cmd).
    type: list
    elements: str
  cmd:
    description:
      - The command as a string, split into arguments the way a shell would split it, but not run
        by a shell (no pipes, redirections or variables). Mutually exclusive with O(argv).
    type: str
  chdir:
    description:
      - Absolute directory inside the container to run in. Defaults to the container's C(workdir).
      - It must be a directory in the container.
      - With the systemd backend a directory other than C(/) is entered by C(/bin/sh) inside the
        container (so a guest cannot redirect the host's C(nsenter) elsewhere); a container
        without C(/bin/sh) runs commands in C(/) only.
    type: str
  env:
    description: Environment variables for the command, over the container's own.
    type: dict
    default: {}
  user:
    description:
      - User to run as, C(USER) or C(USER:GROUP), each a name of the container's C(/etc/passwd)
        and C(/etc/group) or a numeric id.
      - Defaults to the container's own user, as C(docker exec) does - its
        O(armoredgate.volt.volt_container#module:user), else its image's C(User), else root.
      - With proot the identity is emulated (the processes belong to the host user running proot).
    type: str
  stdin:
    description: Data to pass to the command's standard input.
    type: str
  stdin_add_newline:
    description: Add a newline to O(stdin).
    type: bool
    default: true
  strip_empty_ends:
    description: Strip trailing newlines from RV(stdout) and RV(stderr).
    type: bool
    default: true
  timeout:
    description:
      - Seconds the command may run. When exceeded, every process it started in the container is
        ended (SIGTERM, then SIGKILL) and the task fails with RV(timed_out=true).
      - V(0) means no limit.
    type: int
    default: 0
  creates:
    description:
      - A path inside the container (relative to O(chdir)); when it exists, the command is not run.
      - Checked through the container's root filesystem on the host, without entering the container.
    type: str
  removes:
    description: A path inside the container; when it does not exist, the command is not run.
    type: str
notes:
  - The container's root filesystem must be readable by the user running the module for
    O(creates) and O(removes).
  - The module returns when the command itself exits, as C(docker exec) does. Processes it left
    running in the background (C(cmd &), daemons that double-fork or call C(setsid)) keep running
    in the container until they end or the container stops, which ends them. On proot they stay
    traced by proot (their paths are the container's); the guest's C(/bin/sh) reports the
    command's exit status, so an image without C(/bin/sh) keeps the older behaviour (background
    processes are ended with the command). With systemd the command runs in a transient scope
    bound to the container's unit (C(systemd-run --scope)).
  - On O(timeout), every process of the command is ended (SIGTERM, SIGKILL 5 seconds later),
    including those that left its session (proot still traces them; systemd keeps them in the
    command's scope).
seealso:
  - module: armoredgate.volt.volt_container
  - plugin: armoredgate.volt.volt
    plugin_type: connection
    description: Runs whole tasks inside a container, through the same container entry.
"""

EXAMPLES = r"""
- name: Migrate the database once
  armoredgate.volt.volt_exec:
    name: app
    argv: [/usr/local/bin/manage, migrate]
    creates: /var/lib/app/.migrated

- name: Health probe with a shell pipeline and a time limit
  armoredgate.volt.volt_exec:
    name: web
    argv: [/bin/sh, -c, "wget -qO- http://127.0.0.1:8080/health | grep -q ok"]
    timeout: 10
  changed_when: false

- name: Feed a file through a program as another user
  armoredgate.volt.volt_exec:
    name: app
    cmd: sort -u
    stdin: "{{ lookup('ansible.builtin.file', 'names.txt') }}"
    user: app
  register: sorted_names
"""

RETURN = r"""
rc:
  description:
    - Exit code of the command; negative, the signal that ended it (V(-15) for SIGTERM, V(-9) for
      SIGKILL, also when O(timeout) ended it).
    - V(127) when the program is not an executable file in the container (nothing ran, C(changed)
      is V(false)). Null in check mode.
  returned: always
  type: int
  sample: 0
stdout:
  description: Standard output. Bytes that are not UTF-8 are replaced by U+FFFD.
  returned: always
  type: str
stderr:
  description: Standard error, decoded like RV(stdout).
  returned: always
  type: str
stdout_lines:
  description: RV(stdout) split into lines.
  returned: always
  type: list
  elements: str
stderr_lines:
  description: RV(stderr) split into lines.
  returned: always
  type: list
  elements: str
cmd:
  description: The command as a list of arguments.
  returned: always
  type: list
  elements: str
  sample: [/bin/sh, -c, echo hello]
start:
  description: When the command started.
  returned: when the command ran
  type: str
  sample: "2026-11-23 17:02:01.123456"
end:
  description: When the command ended.
  returned: when the command ran
  type: str
delta:
  description: How long it ran.
  returned: when the command ran
  type: str
  sample: "0:00:00.052311"
timed_out:
  description: Whether O(timeout) ended the command.
  returned: when the command ran
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.armoredgate.volt.plugins.module_utils._module_runs import exec_module_spec, run_exec


def main():
    module = AnsibleModule(**exec_module_spec())
    run_exec(module)


if __name__ == "__main__":
    main()
