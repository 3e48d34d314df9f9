"""Runs the collection's real modules through pytest-ansible, on real hosts (localhost here).

pytest-ansible has no check/diff switch: the small shim below adds the official task keywords
`check_mode` and `diff` to the play it builds, so `volt(check=True, diff=True)` reaches the module
as module.check_mode and module._diff.
"""

from __future__ import annotations

import json
import os
import sys

import pytest
from ansible.plugins.loader import init_plugin_loader
from pytest_ansible.module_dispatcher.v213 import ModuleDispatcherV213

COLLECTIONS = os.environ["ANSIBLE_COLLECTIONS_PATH"].split(os.pathsep)[0]
init_plugin_loader([COLLECTIONS])  # before the first module call, or FQCNs are not found
os.environ.setdefault("ANSIBLE_DEPRECATION_WARNINGS", "false")

_build_play_ds = ModuleDispatcherV213._build_play_ds


def _build_play_ds_with_check_and_diff(self, complex_args):
    play = _build_play_ds(self, complex_args)
    for option, keyword in (("check", "check_mode"), ("diff", "diff")):
        if self.options.get(option) is not None:
            play["tasks"][0][keyword] = bool(self.options[option])
    return play


ModuleDispatcherV213._build_play_ds = _build_play_ds_with_check_and_diff


@pytest.fixture
def localhost(ansible_adhoc):
    """Returns run(module, check=False, diff=False, **args) -> the module's result dict."""

    def run(module, check=False, diff=False, **args):
        manager = ansible_adhoc(inventory="localhost,", check=check, diff=diff)
        host = manager.options["inventory_manager"].get_host("localhost")
        # Connection settings go in host vars: pytest-ansible freezes its CLI options on first use.
        host.set_variable("ansible_connection", "local")
        host.set_variable("ansible_python_interpreter", sys.executable)
        result = getattr(manager["localhost"], module)(**args)
        return dict(result["localhost"])

    return run


def tree_snapshot(root) -> str:
    """Every path under root with its type, size and mtime: proof that nothing was written."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            entries.append((path, info.st_mode, info.st_size, info.st_mtime_ns))
    return json.dumps(sorted(entries))
