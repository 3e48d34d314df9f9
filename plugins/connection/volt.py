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
    through Ansible's M(ansible.builtin.ssh) connection (multiplexing, host key checking and
    C(ssh_config) work as for any host); the collection's entry code is copied once per version
    to C(~/.ansible/volt/) on that host, which needs Python 3.
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
      - User to run as inside the container, a name from its C(/etc/passwd) or C(uid[:gid]).
        Root when not set.
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
      - Host the container runs on, reached by SSH (a name or address as for M(ansible.builtin.ssh)).
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
    description: Extra arguments for C(ssh) to O(volt_container_host), as for M(ansible.builtin.ssh).
    type: str
    vars:
      - name: ansible_ssh_common_args
  ssh_extra_args:
    description: More arguments for C(ssh), as for M(ansible.builtin.ssh).
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
    description: Directory for SSH multiplexing sockets, as for M(ansible.builtin.ssh).
    type: str
    vars:
      - name: ansible_control_path_dir
notes:
  - The container must be running for commands; files can be copied to and from a stopped one.
  - Each inventory host is one container. Name it as you like and set C(ansible_host) to the
    container's name, so the same container name can exist on several hosts.
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

import hashlib
import io
import os
import shlex
import tarfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# Runs on the container's host: the collection's entry code from its cache directory, or exit
# 126 so the plugin copies the code there first.
_BOOTSTRAP = (
    "import os, runpy, sys\n"
    "lib = os.path.expanduser(sys.argv[1])\n"
    "if not os.path.isfile(os.path.join(lib, '.complete')):\n"
    "    sys.stderr.write('volt: entry code missing\\n'); raise SystemExit(126)\n"
    "sys.path.insert(0, lib); sys.argv = ['volt-enter'] + sys.argv[2:]\n"
    "runpy.run_module('ansible_collections.armoredgate.volt.plugins.module_utils._enter', run_name='__main__')\n"
)
_UNPACK = (
    "import io, os, shutil, sys, tarfile\n"
    "lib = os.path.expanduser(sys.argv[1]); os.makedirs(os.path.dirname(lib), exist_ok=True)\n"
    "tmp = '%s.%d' % (lib, os.getpid())\n"
    "tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read())).extractall(tmp)\n"
    "open(os.path.join(tmp, '.complete'), 'w').close()\n"
    "try:\n    os.rename(tmp, lib)\n"
    "except OSError:\n    shutil.rmtree(tmp)  # a parallel upload won\n"
)
_MISSING = 126
_ENTRY_FAILED = 125  # _enter.ENTRY_FAILED: the container could not be entered


def _entry_code() -> tuple[str, bytes]:
    """(version hash, tar.gz) of the module_utils the entry runs, for copying to a remote host."""
    from ansible_collections.armoredgate.volt.plugins.module_utils import _enter

    base = os.path.dirname(os.path.abspath(_enter.__file__))
    files = []
    for directory, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("__"))
        files += [os.path.join(directory, name) for name in sorted(filenames) if name.endswith(".py")]
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in files:
            relative = os.path.relpath(path, base)
            with open(path, "rb") as handle:
                data = handle.read()
            digest.update(relative.encode() + b"\0" + data)
            info = tarfile.TarInfo("ansible_collections/armoredgate/volt/plugins/module_utils/" + relative)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return digest.hexdigest()[:16], buffer.getvalue()


class Connection(ConnectionBase):
    """Tasks inside a Volt container."""

    transport = "armoredgate.volt.volt"
    has_pipelining = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._backend = None
        self._ssh = None
        self._entry_lib = None
        self._entry_archive = b""

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self):
        if self._connected:
            return self
        if self.get_option("volt_container_host"):
            from ansible.plugins.loader import connection_loader

            self._ssh = connection_loader.get("ansible.builtin.ssh", self._play_context)
            direct = {
                "host": self.get_option("volt_container_host"),
                "remote_user": self.get_option("volt_host_user"),
                "port": self.get_option("volt_host_port"),
                "ssh_common_args": self.get_option("ssh_common_args"),
                "ssh_extra_args": self.get_option("ssh_extra_args"),
                "private_key_file": self.get_option("private_key_file"),
                "control_path_dir": self.get_option("control_path_dir"),
                "pipelining": True,
            }
            self._ssh.set_options(direct={key: value for key, value in direct.items() if value is not None})
            self._ssh._connect()
        else:
            from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import make_backend
            from ansible_collections.armoredgate.volt.plugins.module_utils._runner import Runner

            options = {
                "backend": self.get_option("volt_backend"),
                "data_dir": self.get_option("volt_data_dir"),
                "proot_path": self.get_option("volt_proot_path"),
            }
            self._backend = self._volt(make_backend, Runner(), options)
        self._connected = True
        return self

    @property
    def _container(self) -> str:
        return self.get_option("remote_addr")

    @staticmethod
    def _volt(function, *args, **kwargs):
        """Call collection code, turning its errors into connection failures."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

        try:
            return function(*args, **kwargs)
        except VoltError as exc:
            raise AnsibleConnectionFailure(f"volt: {exc.msg}") from None

    # -- remote host ---------------------------------------------------------------------------
    def entry(self, action: str, *operands: str, in_data: bytes | None = None) -> tuple[int, bytes, bytes]:
        """Run the entry for action on the container's host over SSH (copying its code once)."""
        if self._entry_lib is None:
            version, self._entry_archive = _entry_code()
            self._entry_lib = f"~/.ansible/volt/entry-{version}"
        argv = [self.get_option("volt_host_python"), "-c", _BOOTSTRAP, self._entry_lib]
        argv += ["--backend", self.get_option("volt_backend")]
        if action != "list":
            argv += ["--name", self._container]
        for option, flag in (("volt_data_dir", "--data-dir"), ("volt_proot_path", "--proot-path")):
            if self.get_option(option):
                argv += [flag, self.get_option(option)]
        if self.get_option("remote_user"):
            argv += ["--user", self.get_option("remote_user")]
        command = shlex.join([*argv, action, "--", *operands])
        rc, out, err = self._ssh.exec_command(command, in_data=in_data, sudoable=False)
        if rc == _MISSING and b"volt: entry code missing" in err:
            display.vvv(
                f"volt: copying the entry code to {self._entry_lib}", host=self.get_option("volt_container_host")
            )
            unpack = shlex.join([self.get_option("volt_host_python"), "-c", _UNPACK, self._entry_lib])
            urc, uout, uerr = self._ssh.exec_command(unpack, in_data=self._entry_archive, sudoable=False)
            if urc != 0:
                raise AnsibleConnectionFailure(f"volt: cannot copy the entry code: {to_native(uerr or uout)}")
            rc, out, err = self._ssh.exec_command(command, in_data=in_data, sudoable=False)
        if rc in (_ENTRY_FAILED, _MISSING) and err.startswith(b"volt: "):
            raise AnsibleConnectionFailure(to_native(err.strip()))
        return rc, out, err

    # -- the connection API --------------------------------------------------------------------
    def exec_command(self, cmd: str, in_data: bytes | None = None, sudoable: bool = True) -> tuple[int, bytes, bytes]:
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        argv = [self._play_context.executable or "/bin/sh", "-c", to_text(cmd)]
        display.vvv(f"EXEC in container {self._container}: {argv}", host=self._container)
        if self._ssh is not None:
            return self.entry("exec", *argv, in_data=in_data)
        from ansible_collections.armoredgate.volt.plugins.module_utils._runner import Runner

        host_argv, env = self._volt(
            self._backend.exec_command, self._container, argv, user=self.get_option("remote_user")
        )
        rc, out, err, _timed_out = self._volt(Runner().execute, host_argv, env, in_data)
        return rc, out, err

    def _rootfs(self) -> str:
        from ansible_collections.armoredgate.volt.plugins.module_utils._enter import container_rootfs

        return self._volt(container_rootfs, self._backend, self._container)

    def put_file(self, in_path: str, out_path: str) -> None:
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path} in container {self._container}", host=self._container)
        try:
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as source:
                if self._ssh is not None:
                    rc, out, err = self.entry("put", out_path, in_data=source.read())
                    if rc != 0:
                        raise AnsibleError(f"volt: failed to put {out_path}: {to_native(err or out)}")
                    return
                from ansible_collections.armoredgate.volt.plugins.module_utils._enter import (
                    write_guest_file,
                )

                self._volt(write_guest_file, self._rootfs(), out_path, source)
        except OSError as exc:
            raise AnsibleError(f"volt: failed to put {in_path} to {out_path}: {exc}") from None

    def fetch_file(self, in_path: str, out_path: str) -> None:
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path} from container {self._container}", host=self._container)
        try:
            with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as sink:
                if self._ssh is not None:
                    rc, out, err = self.entry("fetch", in_path)
                    if rc != 0:
                        raise AnsibleError(f"volt: failed to fetch {in_path}: {to_native(err or out)}")
                    sink.write(out)
                    return
                from ansible_collections.armoredgate.volt.plugins.module_utils._enter import (
                    read_guest_file,
                )

                self._volt(read_guest_file, self._rootfs(), in_path, sink)
        except OSError as exc:
            raise AnsibleError(f"volt: failed to fetch {in_path} to {out_path}: {exc}") from None

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
        self._ssh = None
        self._backend = None
        self._connected = False
