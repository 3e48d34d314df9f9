# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: volt_containers
short_description: Inventory of the Volt containers on a set of hosts
version_added: 0.1.0
description:
  - Lists the Volt containers on this machine and on hosts reached by SSH, and adds each one as
    an inventory host that uses the P(armoredgate.volt.volt#connection) connection, so plays can
    configure what is inside them.
  - A container C(web) on host C(server1) becomes the inventory host C(web@server1) (C(web@local)
    on this machine), in the group C(volt_containers), with the variable C(volt_container) holding
    what M(armoredgate.volt.volt_container_info) returns for it (C(status), C(image), C(backend), ...).
  - The configuration file's name must end with C(volt_containers.yml) or C(volt_containers.yaml).
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin.
    type: str
    required: true
    choices: [armoredgate.volt.volt_containers]
  container_hosts:
    description:
      - Where to look for containers. Each item is a host name or address for SSH, or a dict with
        C(host) and optionally C(backend), C(data_dir), C(python), C(user), C(port),
        C(ssh_common_args).
      - C(local) means this machine, without SSH.
    type: list
    elements: raw
    default: [local]
  backend:
    description: Backend to list, for items that do not set one.
    type: str
    choices: [auto, proot, systemd]
    default: auto
  container_vars:
    description: Variables given to every container host, e.g. C(ansible_python_interpreter).
    type: dict
    default: {}
"""

EXAMPLES = r"""
# prod.volt_containers.yml
plugin: armoredgate.volt.volt_containers
container_hosts:
  - local
  - server1.example.com
  - host: phone1
    port: 8022
    user: u0_a123
    python: /data/data/com.termux/files/usr/bin/python3
container_vars:
  ansible_python_interpreter: /usr/bin/python3
keyed_groups:
  - key: volt_container.status
    prefix: volt
  - key: volt_container.image
    prefix: image
groups:
  running: volt_container.status == 'running'
"""

import re

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

_GROUP = "volt_containers"


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "armoredgate.volt.volt_containers"

    def verify_file(self, path):
        return super().verify_file(path) and re.search(r"volt_containers\.ya?ml$", path) is not None

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self.inventory.add_group(_GROUP)
        for item in self.get_option("container_hosts"):
            where = {"host": item} if isinstance(item, str) else dict(item)
            if not where.get("host"):
                raise AnsibleParserError(f"volt_containers: container_hosts item {item!r} names no host")
            where.setdefault("backend", self.get_option("backend"))
            for record in self._list(where):
                self._add(where, record)

    def _list(self, where: dict) -> list:
        """The containers on where's host, through the connection plugin's way of reaching it."""
        from ansible.playbook.play_context import PlayContext

        from ansible_collections.armoredgate.volt.plugins.plugin_utils._container_hosts import open_host

        local = where["host"] == "local"
        backend_options = {key: where.get(key) for key in ("backend", "data_dir")}
        ssh_options = {
            "remote_user": where.get("user"),
            "port": where.get("port"),
            "ssh_common_args": where.get("ssh_common_args"),
        }
        host = None
        try:
            host = open_host(
                PlayContext(),
                None if local else where["host"],
                backend_options,
                ssh_options,
                where.get("python") or "python3",
            )
            return host.list()
        except Exception as exc:
            place = "this machine" if local else where["host"]
            message = to_native(getattr(exc, "message", None) or exc)
            raise AnsibleParserError(f"volt_containers: {place}: {message.removeprefix('volt: ')}") from None
        finally:
            if host is not None:
                host.close()

    def _add(self, where: dict, record: dict) -> None:
        name = f"{record['name']}@{where['host']}"
        self.inventory.add_host(name, group=_GROUP)
        variables = dict(self.get_option("container_vars"))
        variables.update(
            ansible_connection="armoredgate.volt.volt",
            ansible_host=record["name"],
            ansible_volt_backend=record.get("backend") or where["backend"],
            volt_container=record,
        )
        if where.get("data_dir"):
            variables["ansible_volt_data_dir"] = where["data_dir"]
        if where["host"] != "local":
            variables["ansible_volt_container_host"] = where["host"]
            for key, option in (
                ("python", "ansible_volt_host_python"),
                ("user", "ansible_volt_host_user"),
                ("port", "ansible_volt_host_port"),
                ("ssh_common_args", "ansible_ssh_common_args"),
            ):
                if where.get(key) is not None:
                    variables[option] = where[key]
        for key, value in variables.items():
            self.inventory.set_variable(name, key, value)
        strict = self.get_option("strict")
        self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
