"""The proot role copies a hand-kept list of module_utils for its boot hook: it must hold exactly
what plugins/module_utils/_containers/_boot.py imports, directly or not, or the hook fails on the device."""

from __future__ import annotations

import ast
import os

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
MODULE_UTILS = os.path.join(TOP, "plugins", "module_utils")
PREFIX = "ansible_collections.armoredgate.volt.plugins.module_utils"


def imported_files(relative: str) -> set[str]:
    """module_utils files (relative paths) that relative imports, at any depth."""
    with open(os.path.join(MODULE_UTILS, relative), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    # Imports under `if TYPE_CHECKING:` never run: their modules need not be on the device.
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            node.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            base = node.module[len(PREFIX) :].lstrip(".").replace(".", "/")
            for alias in node.names:
                for candidate in (f"{base}/{alias.name}.py".lstrip("/"), f"{base}.py".lstrip("/")):
                    if os.path.isfile(os.path.join(MODULE_UTILS, candidate)):
                        found.add(candidate)
                        break
    packages = {os.path.join(os.path.dirname(path), "__init__.py") for path in found if "/" in path}
    return found | packages


def closure(start: str) -> set[str]:
    seen, pending = set(), [start]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        if not current.endswith("__init__.py"):
            pending.extend(imported_files(current))
    return seen


def test_boot_hook_copies_every_module_it_imports():
    with open(os.path.join(TOP, "roles", "proot", "vars", "main.yml"), encoding="utf-8") as handle:
        listed = set(yaml.safe_load(handle)["proot_boot_module_utils"])
    # The hook runs _boot.py with python -m, which imports its package too.
    needed = closure("_containers/_boot.py") | {"_containers/__init__.py"}
    assert listed == needed, f"missing: {sorted(needed - listed)}, not needed: {sorted(listed - needed)}"
