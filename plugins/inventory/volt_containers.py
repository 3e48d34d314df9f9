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
  - With O(cache=true) the container records of every host are kept in the cache plugin
    O(cache_plugin) for O(cache_timeout) seconds, and the hosts are not contacted while the
    cache holds them. C(ansible-inventory --flush-cache), C(ansible-playbook --flush-cache) and
    the C(refresh_inventory) meta task list the hosts again and refresh the cache.
  - A cached record holds what M(armoredgate.volt.volt_container_info) returns, the container's
    C(config) among it, with its O(armoredgate.volt.volt_container#module:env) values and its
    image's environment in clear (O(armoredgate.volt.volt_container#module:secret_env) values
    only as keyed digests, never in clear). Pass secrets as C(secret_env), not C(env). A file
    cache plugin such as P(ansible.builtin.jsonfile#cache) writes world-readable files (mode
    0644); when this plugin's process creates O(cache_connection), it creates it readable by
    its owner only (mode 0700), and it warns when an existing O(cache_connection) directory is
    open to other users.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - constructed
  - inventory_cache
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

# cached.volt_containers.yml: list the hosts at most once an hour (--flush-cache lists them again)
plugin: armoredgate.volt.volt_containers
container_hosts: [server1.example.com, server2.example.com]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/ansible/volt_containers
cache_timeout: 3600
"""

import os
import re
import stat

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

_GROUP = "volt_containers"


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "armoredgate.volt.volt_containers"

    def verify_file(self, path):
        return super().verify_file(path) and re.search(r"volt_containers\.ya?ml$", path) is not None

    def _read_config_data(self, path):
        # A file cache plugin creates its directory as it loads (os.makedirs, umask permitting)
        # and writes its files 0644: a directory only its owner can enter keeps them private.
        previous = os.umask(0o077)
        try:
            config = super()._read_config_data(path)
        finally:
            os.umask(previous)
        directory = self.get_option("cache_connection") if self.get_option("cache") else None
        if directory:
            directory = os.path.expanduser(os.path.expandvars(directory))
            if os.path.isdir(directory) and stat.S_IMODE(os.stat(directory).st_mode) & 0o077:
                self.display.warning(
                    f"volt_containers: the inventory cache directory {directory} is open to other users;"
                    " a file cache plugin writes the containers' records there (their env values among them)"
                    " readable by all who can enter it: chmod 700 it"
                )
        return config

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        places = []
        for item in self.get_option("container_hosts"):
            where = {"host": item} if isinstance(item, str) else dict(item)
            if not where.get("host"):
                raise AnsibleParserError(f"volt_containers: container_hosts item {item!r} names no host")
            where.setdefault("backend", self.get_option("backend"))
            places.append(where)

        # The standard inventory cache: read it when the user enables it and the caller allows
        # it (--flush-cache and refresh_inventory pass cache=False), write it after listing.
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        update_cache = self.get_option("cache") and not cache
        listed = None
        if use_cache:
            try:
                listed = self._cached(self._cache[cache_key], places)
            except KeyError:
                pass
            update_cache = listed is None
        if listed is None:
            listed = [self._list(where) for where in places]
        if update_cache:
            self._cache[cache_key] = {"hosts": places, "containers": listed}

        self.inventory.add_group(_GROUP)
        for where, records in zip(places, listed):
            for record in records:
                self._add(where, record)

    @staticmethod
    def _cached(entry, places: list) -> list | None:
        """The cached lists of containers, when the cache entry is for these hosts."""
        if not isinstance(entry, dict) or entry.get("hosts") != places:
            return None
        listed = entry.get("containers")
        return listed if isinstance(listed, list) and len(listed) == len(places) else None

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
