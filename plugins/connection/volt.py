# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: volt
short_description: Run tasks inside Volt containers, on this machine or on hosts reached by SSH
version_added: 0.1.0
description:
  - Runs every task of a host inside a running Volt container, so ordinary modules
    (M(ansible.builtin.template), M(ansible.builtin.copy), M(ansible.builtin.apt), ...) configure
    what is inside it.
  - Commands run through the backend's container entry, the same as M(armoredgate.volt.volt_exec)
    (proot - a proot process on the container's root filesystem with its binds and environment;
    systemd - C(nsenter) into the container's namespaces).
  - Files are copied through the container's root filesystem on its host, without a process in
    the container; symlinks inside the container are followed without ever leading out of it.
  - With O(volt_container_host) the container is on another host. Everything then goes over SSH
    through Ansible's P(ansible.builtin.ssh#connection) connection (multiplexing, host key checking and
    C(ssh_config) work as for any host); the collection's entry code is copied once per version
    to C(~/.ansible/volt/) on that host, which needs Python 3.
  - Over SSH, a file of up to 1 MiB copied into a container goes in the command that writes it.
    Larger ones, and fetched files, are streamed, never held whole in memory - the ssh
    connection's own file transfer copies them to or from a private staging directory under
    C(~/.ansible/volt/transfers/) on the host, removed afterwards, and the host copies them in
    1 MiB chunks between it and the container. So the host needs room for a second copy of such a
    file while it is transferred; and with the ssh connection's C(ssh_transfer_method) set to
    C(piped) (not its default) Ansible itself holds the file in memory.
author:
  - Armored Gates LLC (@armoredgate)
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: Name of the container.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_volt_container
  remote_user:
    description:
      - User to run as inside the container, a name from its C(/etc/passwd) or C(uid), each
        optionally with C(:group) (a name from its C(/etc/group) or C(gid)), as
        M(armoredgate.volt.volt_exec)'s O(armoredgate.volt.volt_exec#module:user) takes it.
      - When not set, the container's own user - its O(armoredgate.volt.volt_container#module:user)
        option, else its image's C(User), else root (as C(docker exec) does).
      - Files copied into the container are owned by this user.
      - With proot the identity is emulated, see the notes.
    type: str
    vars:
      - name: ansible_user
    keyword:
      - name: remote_user
  volt_backend:
    description: Backend of the container, as the modules' O(armoredgate.volt.volt_container#module:backend).
    type: str
    default: auto
    choices: [auto, proot, systemd]
    vars:
      - name: ansible_volt_backend
  volt_data_dir:
    description: Volt data directory on the container's host (default - the modules' default for the user).
    type: str
    vars:
      - name: ansible_volt_data_dir
  volt_proot_path:
    description: proot binary on the container's host (default - looked up as the modules do).
    type: str
    vars:
      - name: ansible_volt_proot_path
  volt_container_host:
    description:
      - Host the container runs on, reached by SSH (a name or address as for P(ansible.builtin.ssh#connection)).
      - When not set, the container is on the machine Ansible runs on.
    type: str
    vars:
      - name: ansible_volt_container_host
  volt_host_user:
    description: SSH user on O(volt_container_host) (default - SSH's own, e.g. from C(ssh_config)).
    type: str
    vars:
      - name: ansible_volt_host_user
  volt_host_port:
    description: SSH port of O(volt_container_host).
    type: int
    vars:
      - name: ansible_volt_host_port
  volt_host_python:
    description: Python 3 on O(volt_container_host).
    type: str
    default: python3
    vars:
      - name: ansible_volt_host_python
  ssh_common_args:
    description: Extra arguments for C(ssh) to O(volt_container_host), as for P(ansible.builtin.ssh#connection).
    type: str
    vars:
      - name: ansible_ssh_common_args
  ssh_extra_args:
    description: More arguments for C(ssh), as for P(ansible.builtin.ssh#connection).
    type: str
    vars:
      - name: ansible_ssh_extra_args
  private_key_file:
    description: SSH private key for O(volt_container_host).
    type: str
    vars:
      - name: ansible_private_key_file
      - name: ansible_ssh_private_key_file
  control_path_dir:
    description: Directory for SSH multiplexing sockets, as for P(ansible.builtin.ssh#connection).
    type: str
    vars:
      - name: ansible_control_path_dir
notes:
  - The container must be running for commands; files can be copied to and from a stopped one.
  - Each inventory host is one container. Name it as you like and set C(ansible_host) to the
    container's name, so the same container name can exist on several hosts.
  - Commands start in the container's working directory when it sets one (its
    O(armoredgate.volt.volt_container#module:workdir) option or its image's C(WorkingDir)), as
    with C(docker exec); else in the home directory of the user they run as, as over SSH, so
    relative paths in tasks are taken from there.
  - B(Become.) The connection switches to C(become_user) itself for the become methods
    C(ansible.builtin.sudo) (the default), C(ansible.builtin.su), C(community.general.doas) and
    C(community.general.sudosu), on both backends - the way C(remote_user) is reached - instead of
    running their program in the container. A command Ansible runs with become runs directly as
    C(become_user) (default C(root)), resolved like O(remote_user); the rest of Ansible's
    become handling (temporary files an unprivileged C(become_user) can read, fetching through
    M(ansible.builtin.slurp)) is unchanged. So C(become) needs no C(sudo) or C(su) in the
    image, and pipelining works with every one of these methods.
  - Because of that, C(become_flags), C(become_exe) and a become password are not used, and the
    container's own rules (C(sudoers), PAM) do not apply - whoever can use this connection
    already runs the container (root on the host for systemd, the container's owner for proot),
    so neither O(remote_user) nor C(become) is a security boundary. Other become methods build
    their command as usual and run it in the container as O(remote_user).
  - B(proot) - O(remote_user) and C(become_user) are proot's emulated identity (C(-0) for
    root, C(-i uid:gid) otherwise). They change what programs in the container see - their
    ids, and the files of the host user running proot appear owned by them - but not what
    those programs may do, which is always what that host user may do. That is also why the
    container's own C(sudo) cannot work under proot (it finds itself owned by the user
    calling it), whatever the become method.
  - B(systemd) - O(remote_user) and C(become_user) are real identities in the container,
    entered with C(nsenter --setuid --setgid) - the user and its primary group, without
    supplementary groups.
"""

EXAMPLES = r"""
# inventory.yml: containers on this machine and on a remote host
# all:
#   children:
#     containers:
#       vars:
#         ansible_connection: armoredgate.volt.volt
#         ansible_python_interpreter: /usr/bin/python3
#       hosts:
#         web-local:
#           ansible_host: web
#         web@server1:
#           ansible_host: web
#           ansible_volt_container_host: server1.example.com
#           ansible_volt_host_user: root

- name: Configure what runs inside the containers
  hosts: containers
  tasks:
    - name: Install nginx in the container
      ansible.builtin.apt:
        name: nginx
        state: present

    - name: Write its site
      ansible.builtin.template:
        src: site.conf.j2
        dest: /etc/nginx/conf.d/site.conf
        mode: "0644"
"""

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.armoredgate.volt.plugins.plugin_utils._container_hosts import open_host

display = Display()

# Become methods that only switch to become_user: the connection does that itself.
BECOME_METHODS = frozenset(
    {"ansible.builtin.sudo", "ansible.builtin.su", "community.general.doas", "community.general.sudosu"}
)


class BecomeByConnection:
    """A task's become plugin whose switch to become_user the connection makes itself.

    Ansible sees the plugin as usual: its options (become_user, ...), an unprivileged
    become_user's temporary file handling, slurp for fetch. Only the command is left unwrapped:
    exec_command runs a sudoable command as become_user through the backend (proot's emulated
    identity, nsenter's real one), so there is no sudo or su in the container to run, and no
    prompt to answer (hence pipelining with every method)."""

    pipelining = True
    require_tty = False

    def __init__(self, plugin) -> None:
        self.plugin = plugin

    def __getattr__(self, name: str):
        plugin = self.__dict__.get("plugin")
        if plugin is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(plugin, name)

    def build_become_command(self, cmd: str, shell) -> str:
        return cmd

    @property
    def user(self) -> str:
        return self.plugin.get_option("become_user") or "root"


class Connection(ConnectionBase):
    """Tasks inside a Volt container."""

    transport = "armoredgate.volt.volt"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._host = None

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self):
        if self._connected:
            return self
        backend_options = {
            "backend": self.get_option("volt_backend"),
            "data_dir": self.get_option("volt_data_dir"),
            "proot_path": self.get_option("volt_proot_path"),
        }
        ssh_options = {
            "remote_user": self.get_option("volt_host_user"),
            "port": self.get_option("volt_host_port"),
            "ssh_common_args": self.get_option("ssh_common_args"),
            "ssh_extra_args": self.get_option("ssh_extra_args"),
            "private_key_file": self.get_option("private_key_file"),
            "control_path_dir": self.get_option("control_path_dir"),
        }
        self._host = open_host(
            self._play_context,
            self.get_option("volt_container_host"),
            backend_options,
            ssh_options,
            self.get_option("volt_host_python"),
        )
        self._connected = True
        return self

    @property
    def _container(self) -> str:
        return self.get_option("remote_addr")

    @property
    def _user(self) -> str | None:
        return self.get_option("remote_user")

    # -- become --------------------------------------------------------------------------------
    def set_become_plugin(self, plugin) -> None:
        if plugin is not None and getattr(plugin, "ansible_name", None) in BECOME_METHODS:
            plugin = BecomeByConnection(plugin)
        super().set_become_plugin(plugin)

    def _exec_user(self, sudoable: bool) -> str | None:
        """Who runs a command: become_user for a command Ansible runs with become (the same one
        it would have wrapped in sudo), else remote_user."""
        if sudoable and isinstance(self.become, BecomeByConnection):
            return self.become.user
        return self._user

    # -- the connection API --------------------------------------------------------------------
    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = [self._play_context.executable or "/bin/sh", "-c", to_text(cmd)]
        user = self._exec_user(sudoable)
        shown = f" as {user}" if user is not None else ""
        display.vvv(f"EXEC in container {self._container}{shown}: {argv}", host=self._container)
        return self._host.exec(self._container, argv, user=user, in_data=in_data)

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path} in container {self._container}", host=self._container)
        try:
            local = to_bytes(in_path, errors="surrogate_or_strict")
            self._host.put(self._container, out_path, local, user=self._user)
        except OSError as exc:
            raise AnsibleError(f"volt: failed to put {in_path} to {out_path}: {exc}") from None

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path} from container {self._container}", host=self._container)
        try:
            local = to_bytes(out_path, errors="surrogate_or_strict")
            self._host.fetch(self._container, in_path, local, user=self._user)
        except OSError as exc:
            raise AnsibleError(f"volt: failed to fetch {in_path} to {out_path}: {exc}") from None

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        self._host = None
        self._connected = False
