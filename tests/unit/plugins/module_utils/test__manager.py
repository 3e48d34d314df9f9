from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import ContainerRecord
from ansible_collections.armoredgate.volt.plugins.module_utils._manager import plan


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
    assert plan(state, record(current) if current else None, drift, recreate=False) == expected


def test_recreate_forces_a_new_container():
    assert plan("started", record("running"), [], recreate=True) == ["remove", "create", "start"]
    assert plan("absent", None, [], recreate=True) == []
