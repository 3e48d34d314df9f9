# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What each module's main() calls: argument specs, and the one place VoltError becomes fail_json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._select import make_backend
from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._containers._manager import ContainerManager
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._processes._runner import Runner

if TYPE_CHECKING:
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import Backend
    from ansible_collections.armoredgate.volt.plugins.module_utils._types import Module
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import absolute_path, validate_name

BACKEND_OPTIONS = ("backend", "data_dir", "proot_path", "allow_unsafe_proot")


def container_module_spec() -> dict:
    spec = _options.argument_spec()
    spec["name"]["required"] = True
    return {"argument_spec": spec, "mutually_exclusive": _options.MUTUALLY_EXCLUSIVE, "supports_check_mode": True}


def container_info_module_spec() -> dict:
    spec = {key: value for key, value in _options.argument_spec().items() if key in BACKEND_OPTIONS}
    spec["name"] = {"type": "str"}
    spec["log_lines"] = {"type": "int", "default": 0}
    return {"argument_spec": spec, "supports_check_mode": True}


def _backend(module: Module) -> Backend:
    return make_backend(Runner(module), module.params, check_mode=module.check_mode)


def _fail(module: Module, exc: VoltError) -> None:
    module.fail_json(msg=exc.msg, **exc.details)


def run_container(module: Module) -> None:
    try:
        if (module.params["stop_timeout"] or 0) < 0:
            raise VoltError("stop_timeout must be 0 or more seconds, got %d" % module.params["stop_timeout"])
        manager = ContainerManager(_backend(module), module.params, module.check_mode, module.warn)
        result = manager.run()
    except VoltError as exc:
        _fail(module, exc)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


def run_container_info(module: Module) -> None:
    try:
        if module.params["log_lines"] < 0:
            raise VoltError("log_lines must be 0 or more, got %d" % module.params["log_lines"])
        backend = _backend(module)
        name = module.params["name"]
        if name is not None:
            record = backend.inspect(validate_name(name))
            records = [record] if record else []
        else:
            records = backend.list()
        containers = []
        for record in records:
            info = record.to_result()
            if module.params["log_lines"] and record.status != "corrupt":
                info["logs"] = backend.logs(record.name, module.params["log_lines"])
            containers.append(info)
    except VoltError as exc:
        _fail(module, exc)
    module.exit_json(changed=False, exists=bool(containers), containers=containers)


def image_module_spec() -> dict:
    spec = {
        "name": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "source": {"type": "str", "choices": ["directory", "tarball", "oci", "debootstrap", "container"]},
        "suite": {"type": "str"},
        "include": {"type": "list", "elements": "str"},
        "container": {"type": "str"},
        "mirror": {"type": "str"},
        "variant": {"type": "str", "choices": ["minbase", "buildd", "fakechroot"]},
        "reference": {"type": "str"},
        "platform": {"type": "str"},
        "username": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "ca_path": {"type": "path"},
        "pull": {"type": "str", "default": "always", "choices": ["always", "missing"]},
        "path": {"type": "path"},
        "url": {"type": "str"},
        "checksum": {"type": "str"},
        "validate_checksum": {"type": "bool", "default": True},
        "validate_certs": {"type": "bool", "default": True},
        "force": {"type": "bool", "default": False},
        "max_size": {"type": "raw", "default": "32G"},
        "data_dir": {"type": "path"},
    }
    return {
        "argument_spec": spec,
        "mutually_exclusive": [("path", "url", "reference", "container")],
        "required_together": [("username", "password")],
        "supports_check_mode": True,
    }


def run_image(module: Module) -> None:
    from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import (
        default_data_dir,
    )
    from ansible_collections.armoredgate.volt.plugins.module_utils._images._manager import (
        ImageManager,
    )

    try:
        data_dir = absolute_path(module.params["data_dir"], "data_dir") if module.params["data_dir"] else None
        manager = ImageManager(module, Runner(module), data_dir or default_data_dir())
        result = manager.run()
    except VoltError as exc:
        _fail(module, exc)
    module.exit_json(**result)


def proot_info_module_spec() -> dict:
    spec = {key: value for key, value in _options.argument_spec().items() if key in ("data_dir", "proot_path")}
    return {"argument_spec": spec, "supports_check_mode": True}


def run_proot_info(module: Module) -> None:
    backend = make_backend(Runner(module), dict(module.params, backend="proot"))
    try:
        proot = backend.probe()
    except VoltError as exc:
        _fail(module, exc)
    if not proot["path_translation_safe"]:
        module.warn(f"{proot['path']} fails the path translation check: {proot['path_translation_problem']}")
    if proot["path_translation_tools"] == ["ls"]:
        module.warn("stat was not found: path translation was checked with ls -d only")
    module.exit_json(changed=False, proot=proot)


def exec_module_spec() -> dict:
    spec = {key: value for key, value in _options.argument_spec().items() if key in BACKEND_OPTIONS}
    spec.update(
        name={"type": "str", "required": True},
        argv={"type": "list", "elements": "str"},
        cmd={"type": "str"},
        chdir={"type": "str"},
        env={"type": "dict", "default": {}},
        user={"type": "str"},
        stdin={"type": "str"},
        stdin_add_newline={"type": "bool", "default": True},
        strip_empty_ends={"type": "bool", "default": True},
        timeout={"type": "int", "default": 0},
        creates={"type": "str"},
        removes={"type": "str"},
    )
    return {
        "argument_spec": spec,
        "mutually_exclusive": [("argv", "cmd")],
        "required_one_of": [("argv", "cmd")],
        "supports_check_mode": True,
    }


def run_exec(module: Module) -> None:
    from ansible_collections.armoredgate.volt.plugins.module_utils._entry._exec import Execution

    try:
        backend = _backend(module)
        result, failure = Execution(backend, backend.runner, module.params, module.check_mode).run()
    except VoltError as exc:
        _fail(module, exc)
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)
