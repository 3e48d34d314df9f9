# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restart settings of the unit drop-in: only the values Volt means pass."""

from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._systemd_syntax import assignment
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        ("RestartSec", 100, "RestartSec=100ms"),
        ("StartLimitIntervalSec", "infinity", "StartLimitIntervalSec=infinity"),
        ("StartLimitIntervalSec", 0, "StartLimitIntervalSec=0"),
        ("StartLimitBurst", 3, "StartLimitBurst=3"),
    ],
)
def test_restart_settings(setting, value, line):
    assert assignment("unit", setting, value, "restart_retries") == line


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("RestartSec", 0),
        ("RestartSec", "100ms\nExecStartPre=/bin/id"),
        ("StartLimitIntervalSec", False),
        ("StartLimitIntervalSec", 10),
        ("StartLimitIntervalSec", "infinity\nExecStartPre=/bin/id"),
        ("StartLimitBurst", 0),
        ("StartLimitBurst", True),
        ("StartLimitBurst", "3"),
    ],
)
def test_other_restart_values_are_refused_naming_the_option(setting, value):
    with pytest.raises(VoltError, match=r"^restart_retries"):
        assignment("unit", setting, value, "restart_retries")


@pytest.mark.parametrize(
    ("setting", "value", "line"),
    [
        ("Wants", ["volt-health@web.timer"], "Wants=volt-health@web.timer"),
        ("Wants", ["volt-health@my\\x2dweb.timer"], "Wants=volt-health@my\\x2dweb.timer"),
        ("OnActiveSec", 1500, "OnActiveSec=1500ms"),
        ("OnUnitInactiveSec", 100, "OnUnitInactiveSec=100ms"),
        ("AccuracySec", 1, "AccuracySec=1ms"),
        ("TimeoutStartSec", 32, "TimeoutStartSec=32s"),
        ("ExecStart", ["/usr/bin/env", "-i", "a $b %c"], 'ExecStart="/usr/bin/env" "-i" "a $$b %%c"'),
    ],
)
def test_health_check_settings(setting, value, line):
    assert assignment("unit", setting, value, "healthcheck") == line


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("Wants", []),
        ("Wants", "volt-health@web.timer"),
        ("Wants", ["volt-health@%H.timer"]),  # a specifier
        ("Wants", ["a.timer b.timer"]),
        ("Wants", ["volt-health@web.timer\nExecStartPre=/bin/id"]),
        ("Wants", ["volt-health@we\\b.timer"]),  # a backslash that is no \xNN escape
        ("OnActiveSec", 0),
        ("OnActiveSec", 1.5),
        ("AccuracySec", "1ms\n[Service]"),
        ("TimeoutStartSec", -1),
        ("ExecStart", ["env", "-i"]),  # not an absolute path
        ("ExecStart", ["/bin/sh", "-c", "echo\nExecStartPre=/bin/id"]),
    ],
)
def test_other_health_check_values_are_refused_naming_the_option(setting, value):
    with pytest.raises(VoltError, match="healthcheck"):
        assignment("unit", setting, value, "healthcheck")
