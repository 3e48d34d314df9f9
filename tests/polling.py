"""Polling helper shared by the tests: real processes take a moment to appear and to go."""

from __future__ import annotations

import time


def wait_for(predicate, timeout=10.0, interval=0.02):
    """True as soon as predicate() is true, else predicate()'s value after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
