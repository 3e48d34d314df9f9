# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a container runs, from its options laid over its image's config, by Docker's rules.

Both backends start exactly this: the program and its arguments, the environment the image
and the user give, the working directory, the user, and the signal that stops it.
"""

from __future__ import annotations

from ansible_collections.armoredgate.volt.plugins.module_utils._files import _rootfs

DEFAULT_STOP_SIGNAL = "SIGTERM"


class Launch:
    """The resolved start of one container (argv None: neither options nor image name a program)."""

    __slots__ = ("argv", "env", "from_image", "origin", "stop_signal", "user", "workdir")

    def __init__(self, config: dict, rootfs: str | None = None) -> None:
        image = config.get("image_config") or {}
        command = list(config.get("command") or [])
        if config.get("entrypoint") is not None:
            # A new entrypoint drops the image's Cmd: only the task's command follows it.
            entrypoint, origin = list(config["entrypoint"]), "entrypoint"
        else:
            entrypoint, origin = list(image.get("entrypoint") or []), "the image's entrypoint"
            command = command or list(image.get("cmd") or [])
        argv = entrypoint + command
        if not entrypoint:
            origin = "command" if config.get("command") else "the image's command"
        # What names the program (argv[0]), for errors.
        self.origin = origin
        self.from_image = bool(argv) and not config.get("command") and config.get("entrypoint") is None
        if not argv and rootfs is not None:
            # An image without a config (a directory, a tarball, debootstrap): the seed's guess.
            argv, self.origin = _rootfs.detect_entrypoint(rootfs) or [], "the detected entrypoint"
        self.argv: list[str] | None = argv or None
        # The image's variables, then the task's (the task wins).
        self.env: dict[str, str] = {**(image.get("env") or {}), **(config.get("env") or {})}
        self.workdir: str = config.get("workdir") or image.get("workdir") or "/"
        self.user: str | None = config.get("user") or image.get("user") or None
        self.stop_signal: str = config.get("stop_signal") or image.get("stop_signal") or DEFAULT_STOP_SIGNAL

    @property
    def as_root(self) -> bool:
        return self.user in (None, "root", "0", "0:0", "root:root")
