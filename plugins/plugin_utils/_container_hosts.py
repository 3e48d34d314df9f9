# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host a container lives on, as the controller reaches it: this machine (the backend is
called directly) or a host over SSH (the collection's entry code, _host_entry.py, runs there). The
connection plugin runs tasks through it and the inventory plugin lists containers through it."""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import tarfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
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
    "runpy.run_module('ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry',\n"
    "                 run_name='__main__')\n"
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
_ENTRY_FAILED = 125  # _host_entry.ENTRY_FAILED: the container could not be entered
# Files up to this size go to the host inside the entry command's stdin (one round trip);
# larger ones through a staging file on the host (SshHost.put).
_INLINE_MAX = 1024 * 1024


def _entry_code() -> tuple[str, bytes]:
    """(version hash, tar.gz) of the module_utils the entry runs, for copying to a remote host."""
    from ansible_collections.armoredgate.volt.plugins.module_utils._entry import _host_entry

    base = os.path.dirname(os.path.dirname(os.path.abspath(_host_entry.__file__)))  # module_utils/
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


def _volt(function, *args, **kwargs):
    """Call collection code, turning its errors into connection failures."""
    from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

    try:
        return function(*args, **kwargs)
    except VoltError as exc:
        raise AnsibleConnectionFailure(f"volt: {exc.msg}") from None


class LocalHost:
    """Containers on this machine: the backend is called in this process."""

    def __init__(self, backend_options: dict) -> None:
        from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import make_backend
        from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

        self._backend = _volt(make_backend, Runner(), backend_options)

    def list(self) -> list[dict]:
        return [record.to_result() for record in _volt(self._backend.list)]

    def exec(self, name: str, argv: list[str], *, user: str | None, in_data: bytes | None) -> tuple[int, bytes, bytes]:
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._exec import run_in_container
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry import start_directory
        from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

        cwd = _volt(start_directory, self._backend, name, user)
        rc, out, err, _timed_out = _volt(
            run_in_container, self._backend, Runner(), name, argv, cwd=cwd, user=user, stdin=in_data
        )
        return rc, out, err

    def _rootfs(self, name: str) -> str:
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry import container_rootfs

        return _volt(container_rootfs, self._backend, name)

    def put(self, name: str, path: str, local: bytes, *, user: str | None) -> None:
        """Copy the local file to path in the container (a new file is user's)."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry import (
            container_owner,
            write_guest_file,
        )

        rootfs, owner = _volt(container_owner, self._backend, name, user)
        with open(local, "rb") as source:
            _volt(write_guest_file, rootfs, path, source, owner)

    def fetch(self, name: str, path: str, local: bytes, *, user: str | None) -> None:
        """Copy the container's file at path to the local file."""
        from ansible_collections.armoredgate.volt.plugins.module_utils._entry._host_entry import read_guest_file

        rootfs = self._rootfs(name)
        with open(local, "wb") as sink:
            _volt(read_guest_file, rootfs, path, sink)

    def close(self) -> None:
        self._backend = None


class SshHost:
    """Containers on a host reached with Ansible's ssh connection (multiplexing, host keys and
    ssh_config work as for any host); the entry code is copied there once per version."""

    def __init__(self, play_context, ssh_options: dict, backend_options: dict, python: str) -> None:
        from ansible.plugins.loader import connection_loader

        self._ssh = connection_loader.get("ansible.builtin.ssh", play_context)
        self._ssh.set_options(direct=dict(ssh_options, pipelining=True))
        self._ssh._connect()
        self._backend_options = backend_options
        self._python = python
        self._lib: str | None = None
        self._archive = b""
        self.address = ssh_options["host"]

    def _entry(
        self,
        action: str,
        *operands: str,
        name: str | None = None,
        user: str | None = None,
        size: int | None = None,
        stage: bool = False,
        staged: str | None = None,
        in_data: bytes | None = None,
    ) -> tuple[int, bytes, bytes]:
        """Run the entry for action on the host (copying its code there first if missing)."""
        if self._lib is None:
            version, self._archive = _entry_code()
            self._lib = f"~/.ansible/volt/entry-{version}"
        argv = [self._python, "-c", _BOOTSTRAP, self._lib, "--backend", self._backend_options["backend"]]
        if name is not None:
            argv += ["--name", name]
        for option, flag in (("data_dir", "--data-dir"), ("proot_path", "--proot-path")):
            if self._backend_options.get(option):
                argv += [flag, self._backend_options[option]]
        if user:
            argv += ["--user", user]
        if size is not None:
            argv += ["--size", str(size)]
        if stage:
            argv += ["--stage"]
        if staged is not None:
            argv += ["--staged", staged]
        command = shlex.join([*argv, action, "--", *operands])
        rc, out, err = self._ssh.exec_command(command, in_data=in_data, sudoable=False)
        if rc == _MISSING and b"volt: entry code missing" in err:
            display.vvv(f"volt: copying the entry code to {self._lib}", host=self.address)
            unpack = shlex.join([self._python, "-c", _UNPACK, self._lib])
            urc, uout, uerr = self._ssh.exec_command(unpack, in_data=self._archive, sudoable=False)
            if urc != 0:
                raise AnsibleConnectionFailure(f"volt: cannot copy the entry code: {to_native(uerr or uout)}")
            rc, out, err = self._ssh.exec_command(command, in_data=in_data, sudoable=False)
        if rc in (_ENTRY_FAILED, _MISSING) and err.startswith(b"volt: "):
            raise AnsibleConnectionFailure(to_native(err.strip()))
        return rc, out, err

    def list(self) -> list[dict]:
        import json

        rc, out, err = self._entry("list")
        if rc != 0:
            raise AnsibleError(f"volt: cannot list the containers on {self.address}: {to_native(err or out).strip()}")
        return json.loads(out)

    def exec(self, name: str, argv: list[str], *, user: str | None, in_data: bytes | None) -> tuple[int, bytes, bytes]:
        return self._entry("exec", *argv, name=name, user=user, in_data=in_data)

    # Ansible's ssh connection holds a command's stdin and stdout whole in memory, so a large file
    # is not sent through the entry command: it goes through a staging file on the host, copied
    # by the ssh connection's put_file/fetch_file (sftp or scp, which stream, unless
    # ssh_transfer_method is piped), and volt-enter copies it in chunks between that file and
    # the container. Streaming through an ssh process of our own would need that connection's
    # private command building and password handling; this uses only its public methods.
    def put(self, name: str, path: str, local: bytes, *, user: str | None) -> None:
        size = os.path.getsize(local)
        if size <= _INLINE_MAX:
            with open(local, "rb") as source:
                data = source.read(_INLINE_MAX + 1)
            # With its size: the ssh connection gives a command without data a terminal as
            # stdin, which never ends, so an empty file would never be written.
            rc, out, err = self._entry("put", path, name=name, user=user, size=len(data), in_data=data or None)
            self._check(rc, out, err, f"put {path}")
            return
        rc, out, err = self._entry("put", path, name=name, user=user, stage=True)
        staged = self._staged(rc, out, err, f"put {path}")
        rc = None
        try:
            self._ssh.put_file(to_text(local, errors="surrogate_or_strict"), staged)
            # volt-enter removes the staging directory, whatever happens.
            rc, out, err = self._entry("put", path, name=name, user=user, size=size, staged=_staging_name(staged))
        finally:
            if rc is None:
                self._unstage(staged)
        self._check(rc, out, err, f"put {path}")

    def fetch(self, name: str, path: str, local: bytes, *, user: str | None) -> None:
        rc, out, err = self._entry("fetch", path, name=name, user=user, stage=True)
        staged = self._staged(rc, out, err, f"fetch {path}")
        try:
            self._ssh.fetch_file(staged, to_text(local, errors="surrogate_or_strict"))
        finally:
            self._unstage(staged)

    @staticmethod
    def _check(rc: int, out: bytes, err: bytes, what: str) -> None:
        if rc != 0:
            raise AnsibleError(f"volt: failed to {what}: {to_native(err or out)}")

    def _staged(self, rc: int, out: bytes, err: bytes, what: str) -> str:
        """The staging file volt-enter made and printed."""
        self._check(rc, out, err, what)
        staged = to_text(out.rstrip(b"\n"), errors="surrogate_or_strict")
        if not out.endswith(b"\n") or not os.path.isabs(staged):
            raise AnsibleError(f"volt: failed to {what}: no staging file in {out!r}")
        return staged

    def _unstage(self, staged: str) -> None:
        """Remove a staging directory; a failure is only shown (the transfer's own error, if any,
        is what matters, and volt-enter removes day-old ones)."""
        try:
            rc, out, err = self._entry("unstage", _staging_name(staged))
        except AnsibleError as exc:
            rc, out, err = 1, b"", to_bytes(str(exc))
        if rc != 0:
            where = f"{os.path.dirname(staged)} on {self.address}"
            display.warning(f"volt: could not remove {where}: {to_native(err or out)}")

    def close(self) -> None:
        self._ssh.close()


def _staging_name(staged: str) -> str:
    return os.path.basename(os.path.dirname(staged))


def open_host(play_context, address: str | None, backend_options: dict, ssh_options: dict, python: str):
    """The host of the containers: this machine when address is empty, else address over SSH.
    backend_options: backend, data_dir, proot_path. ssh_options: the ssh connection's options
    (remote_user, port, ssh_common_args, ...; None values are left out)."""
    if not address:
        return LocalHost(backend_options)
    ssh = {key: value for key, value in dict(ssh_options, host=address).items() if value is not None}
    return SshHost(play_context, ssh, backend_options, python)
