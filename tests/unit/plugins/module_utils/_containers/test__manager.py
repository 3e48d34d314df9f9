from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import ContainerRecord
from ansible_collections.armoredgate.volt.plugins.module_utils._containers._manager import plan
from ansible_collections.armoredgate.volt.plugins.module_utils._containers._options import change_needed


def record(status):
    return ContainerRecord(name="c", backend="proot", status=status)


@pytest.mark.parametrize(
    ("state", "current", "drift", "expected"),
    [
        ("present", None, [], ["create"]),
        ("present", "created", [], []),
        ("present", "running", [], []),
        ("present", "stopped", [], []),
        ("present", "running", ["env"], ["remove", "create", "start"]),
        ("present", "stopped", ["env"], ["remove", "create"]),
        ("started", None, [], ["create", "start"]),
        ("started", "created", [], ["start"]),
        ("started", "stopped", [], ["start"]),
        ("started", "running", [], []),
        ("started", "running", ["image"], ["remove", "create", "start"]),
        ("stopped", None, [], ["create"]),
        ("stopped", "running", [], ["stop"]),
        ("stopped", "stopped", [], []),
        ("stopped", "running", ["ports"], ["remove", "create"]),
        ("restarted", None, [], ["create", "start"]),
        ("restarted", "running", [], ["stop", "start"]),
        ("restarted", "stopped", [], ["start"]),
        ("absent", None, [], []),
        ("absent", "running", [], ["remove"]),
        ("absent", "stopped", [], ["remove"]),
    ],
)
def test_plan(state, current, drift, expected):
    change = change_needed(drift)
    assert plan(state, record(current) if current else None, change, recreate=False) == expected


def test_recreate_forces_a_new_container():
    assert plan("started", record("running"), None, recreate=True) == ["remove", "create", "start"]
    assert plan("absent", None, None, recreate=True) == []


@pytest.mark.parametrize(
    ("state", "current", "drift", "expected"),
    [
        ("started", "running", ["memory"], ["update", "stop", "start"]),
        ("started", "stopped", ["memory"], ["update", "start"]),
        ("present", "running", ["memory"], ["update", "stop", "start"]),
        ("present", "stopped", ["memory"], ["update"]),
        ("stopped", "running", ["memory"], ["update", "stop"]),
        ("restarted", "running", ["memory"], ["update", "stop", "start"]),
        ("started", "running", ["enabled"], ["update"]),
        ("restarted", "running", ["enabled"], ["update", "stop", "start"]),
        ("started", "running", ["enabled", "env"], ["remove", "create", "start"]),
    ],
)
def test_in_place_changes(state, current, drift, expected):
    assert plan(state, record(current), change_needed(drift), recreate=False) == expected
