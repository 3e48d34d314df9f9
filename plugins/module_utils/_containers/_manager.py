# Copyright (c) 2026 Armored Gates LLC
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The container state machine: read current -> compare -> plan -> act (unless check mode)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._base import Backend, ContainerRecord
from ansible_collections.armoredgate.volt.plugins.module_utils._containers import _options
from ansible_collections.armoredgate.volt.plugins.module_utils._errors import CorruptRecord, VoltError

if TYPE_CHECKING:
    from ansible_collections.armoredgate.volt.plugins.module_utils._types import Action, Change, State


def plan(state: State, current: ContainerRecord | None, change: Change | None, recreate: bool) -> list[Action]:
    """The actions that take `current` to `state`, in order. Pure: unit-tested on its own.

    `change` says how drifted options must be applied (see _options.change_needed).
    """
    if state == "absent":
        return ["remove"] if current else []
    running = bool(current and current.running)
    actions: list[Action] = []
    if current is None:
        actions.append("create")
    elif recreate or change == "recreate":
        actions += ["remove", "create"]
    elif change in ("restart", "update"):
        actions.append("update")
        if change == "restart" and running and state != "stopped":
            actions += ["stop", "start"]  # new limits apply from the next start
    running_after = running and "create" not in actions
    if state == "stopped":
        if running_after:
            actions.append("stop")
    elif state in ("started", "healthy", "restarted") or (state == "present" and running):
        if not running_after:
            actions.append("start")
        elif state == "restarted" and "start" not in actions:
            actions += ["stop", "start"]
    return actions


def _view(record: ContainerRecord | None) -> dict:
    if record is None:
        return {"state": "absent"}
    return {"state": record.status, "config": record.config}


class ContainerManager:
    """Drives one backend through the plan for one container."""

    def __init__(self, backend: Backend, params: dict, check_mode: bool, warn) -> None:
        self.backend = backend
        self.params = params
        self.check_mode = check_mode
        self.warn = warn
        self.desired = _options.desired_config(params, backend.name, warn)
        # Clear secret_env values stay here; the config (stored, compared, returned) gets digests.
        self.secrets = self.desired.get("secret_env")
        if self.secrets is not None:
            self.desired["secret_env"] = backend.secret_digests(self.secrets, create_key=False)
        digest = backend.image_digest(self.desired["image"]) if "image" in self.desired else None
        if digest:
            self.desired["image_digest"] = digest
        image_config = backend.image_config(self.desired["image"]) if "image" in self.desired else None
        if image_config is not None:
            self.desired["image_config"] = image_config

    def _current(self) -> ContainerRecord | None:
        name = self.params["name"]
        try:
            return self.backend.inspect(name, persist=not self.check_mode)
        except CorruptRecord as exc:
            if not self.params["force"]:
                exc.msg += " (force: true removes the broken container)"
                raise
            # force: treat the broken container as one that must be replaced
            return ContainerRecord(name=name, backend=self.backend.name, status="corrupt")

    def _plan(self) -> tuple[ContainerRecord | None, list[str], list[str], dict]:
        """Read the container and work out (current, drifted options, actions, config to apply)."""
        current = self._current()
        drift: list[str] = []
        if current is not None and self.params["state"] != "absent":
            drift = ["records"] if current.status == "corrupt" else _options.drifted(self.desired, current.config)
        change = "recreate" if drift == ["records"] else _options.change_needed(drift)
        actions = plan(self.params["state"], current, change, self.params["recreate"])
        base = current.config if current else self.backend.default_config()
        config = _options.effective_config(_options.merged(base, self.desired), self.backend.name)
        if actions:  # refuse what the backend cannot do before changing anything
            self.backend.check_config(self.params["name"], config, actions)
            if self.secrets and "create" in actions:
                self.backend.check_secrets(self.secrets)
        return current, drift, actions, config

    def run(self) -> dict:
        name = self.params["name"]
        current, drift, actions, config = self._plan()
        after = current if current is None or current.status != "corrupt" else None
        if actions and not self.check_mode:
            # Only a run that changes something takes the lock (a no-op writes nothing, not even a
            # lock file); under it, plan again, since another run may have acted meanwhile.
            with self.backend.lock(name) as lock:
                if self.secrets is not None:  # the data dir's key is made by the first run that acts
                    self.desired["secret_env"] = self.backend.secret_digests(self.secrets, create_key=True)
                current, drift, actions, config = self._plan()
                if actions:
                    if "start" in actions and current is not None and current.exited:
                        # Say why a container that keeps dying makes every run report a change.
                        self.warn(
                            f"container {name} had exited on its own (exit code {current.exit_code}, "
                            f"at {current.finished_at}); starting it again"
                        )
                    self._act(actions, config)
                after = self.backend.inspect(name)
                if after is None:
                    lock.discard()  # the container is gone: leave no lock file behind
        if self.params["state"] == "healthy" and not self.check_mode:
            self.backend.wait_healthy(name, self.params.get("healthy_wait_timeout") or 0)
            after = self.backend.inspect(name)
        return {
            "changed": bool(actions),
            "actions": actions,
            "drifted": drift,
            "container": after.to_result() if after else {},
            "diff": {"before": _view(current), "after": self._predict(current, actions, config)},
        }

    def _predict(self, current: ContainerRecord | None, actions: list[str], config: dict) -> dict:
        if self.params["state"] == "absent":
            return {"state": "absent"}
        if not actions:
            return _view(current)
        moves = [a for a in actions if a in ("start", "stop", "create")]
        state = {"start": "running", "stop": "stopped", "create": "created"}[moves[-1]] if moves else current.status
        return {"state": state, "config": config}

    def _act(self, actions: list[str], config: dict) -> None:
        try:
            self._run_actions(actions, config)
        except VoltError:
            if "create" in actions and self.backend.inspect(self.params["name"]) is not None:
                # All or nothing: a container created by this run that then failed to start goes.
                self.backend.remove(self.params["name"], config["stop_timeout"])
                self.backend.remove_secrets(self.params["name"])
            raise

    def _run_actions(self, actions: list[str], config: dict) -> None:
        name = self.params["name"]
        timeout = config["stop_timeout"]  # the task's, else the container's
        # A container made again without secret_env in the task keeps the values it had.
        secrets = self.secrets if self.secrets is not None else self.backend.read_secrets(name)
        for action in actions:
            if action == "remove":
                self.backend.remove(name, timeout)
                self.backend.remove_secrets(name)
            elif action == "create":
                self.backend.write_secrets(name, secrets)  # first: the systemd backend renders them
                try:
                    self.backend.create(name, config)
                except BaseException:
                    self.backend.remove_secrets(name)
                    raise
            elif action == "start":
                self.backend.start(name)
                self.backend.confirm_running(name, self.params.get("start_grace_period") or 0)
            elif action == "stop":
                self.backend.stop(name, timeout)
            elif action == "update":
                self.backend.update(name, config)
