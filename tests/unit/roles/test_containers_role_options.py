"""The containers role lists each module option by hand in its tasks: an option added to a module
later would silently never reach it. These tests hold the role's tasks to the modules' specs."""

from __future__ import annotations

import os

import yaml

from ansible_collections.armoredgate.volt.plugins.module_utils import _module_runs

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
TASKS = os.path.join(TOP, "roles", "containers", "tasks", "main.yml")


def passed_options(module: str) -> list[set[str]]:
    """The option names each task of the role gives to module."""
    with open(TASKS, encoding="utf-8") as handle:
        tasks = yaml.safe_load(handle)
    return [set(task[module]) for task in tasks if module in task]


def test_every_container_option_reaches_volt_container():
    spec = set(_module_runs.container_module_spec()["argument_spec"])
    (passed,) = passed_options("armoredgate.volt.volt_container")
    assert passed == spec, f"missing: {sorted(spec - passed)}, unknown: {sorted(passed - spec)}"


def test_every_image_option_reaches_volt_image():
    spec = set(_module_runs.image_module_spec()["argument_spec"])
    tasks = passed_options("armoredgate.volt.volt_image")
    assert tasks, "the role has no volt_image task"
    # Images to keep get every option; images to remove need only what finds them.
    assert tasks[0] == spec, f"missing: {sorted(spec - tasks[0])}, unknown: {sorted(tasks[0] - spec)}"
    for removal in tasks[1:]:
        assert removal <= spec and {"name", "state"} <= removal, sorted(removal)
