# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation of names and paths, done before anything touches the disk."""

from __future__ import annotations

import os
import re

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
# Image references may carry a registry, repository path and tag (debian:bookworm, team/app:1).
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$")
_IMAGE_ESCAPES = {":": "%3A", "/": "%2F", "@": "%40"}
# Leaves room for the store's hidden '.<directory>.building-XXXXXXXX' names within NAME_MAX (255).
_IMAGE_DIR_MAX = 200


def validate_name(name: object, what: str = "container") -> str:
    """Return name if it is a safe container name, else raise VoltError naming the bad value."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise VoltError(
            f"invalid {what} name {name!r}: it must match {NAME_PATTERN} (letters, digits, '_', '.', '-'; "
            "at most 64 characters, starting with a letter or digit)"
        )
    return name


def image_dir_name(image: object) -> str:
    """Map an image name to its directory in the store, one to one (removing one image must never
    touch another): a name of letters, digits, '_', '.' and '-' is its own directory; in any other
    name ':', '/' and '@' become %3A, %2F and %40. No name holds '%', so escaped and plain names
    never meet."""
    if not isinstance(image, str) or not _IMAGE_RE.fullmatch(image) or ".." in image.split("/"):
        raise VoltError(
            f"invalid image name {image!r}: use letters, digits and '_.:/@-', starting with a letter or digit"
        )
    directory = "".join(_IMAGE_ESCAPES.get(char, char) for char in image)
    if len(directory) > _IMAGE_DIR_MAX:
        raise VoltError(
            f"invalid image name {image!r}: its store directory {directory!r} would be longer than "
            f"{_IMAGE_DIR_MAX} characters"
        )
    return directory


def absolute_path(value: object, what: str) -> str:
    """Return a normalised absolute path, or raise VoltError naming the option and value."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise VoltError(f"{what} must be an absolute path, got {value!r}")
    if CONTROL_RE.search(value):
        # Paths reach systemd files, command lines and logs, where a newline starts a new entry.
        raise VoltError(f"{what} must not contain control characters (newline, NUL, ...), got {value!r}")
    path = os.path.normpath(value)
    # normpath keeps a leading '//' (POSIX allows it to mean something else); we never want it.
    return "/" + path.lstrip("/")


def split_port(port: str) -> tuple[int, int, str]:
    """(host port, container port, protocol) of a published port as the options store it:
    "HOST:CONTAINER" (TCP) or "HOST:CONTAINER/udp"."""
    match = re.fullmatch(r"([0-9]{1,5})(?::([0-9]{1,5}))?(?:/(tcp|udp))?", port) if isinstance(port, str) else None
    if match is None:
        raise VoltError(f"port {port!r} is not HOST:CONTAINER or HOST:CONTAINER/udp")
    return int(match[1]), int(match[2] or match[1]), match[3] or "tcp"
