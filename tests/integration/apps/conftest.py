"""Session fixtures: the application images (app_images.py) in the loopback registry, here and,
through an SSH reverse tunnel, on the fleet host sys1.

app_registry    -> app_images.AppRegistry
    .refs        {"web": "127.0.0.1:PORT/volt-test/web:1", "kv": ..., "pyapp": ..., "fail": ...}
    .port, .host the plain-HTTP registry (127.0.0.1:PORT)
    .configs     {key: the whole image config document pushed} (.images[key].container_config is
                 its "config" object: Entrypoint, Cmd, Env, User, WorkingDir, ...)
    .images      {key: AppImage} with .digest (manifest), .manifest, .layers, .diff_ids
    .base        the shared base layer (digest, sizes, package versions, users' uid/gid)
    .pull_args(key, **extra) -> volt_image's arguments (reference, validate_certs=False)
fleet_registry  -> FleetRegistry: the same, reachable on sys1 at the same 127.0.0.1:PORT while
                   the session runs (.host "sys1", .ssh_config, .inventory, .app = app_registry)

The registries are started with tests/setup/registry/registry (as the pull tests do) and stopped
at the end unless they were running before or VOLT_REGISTRY_KEEP is set.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..conftest import TOP
from ..images import oci_images
from . import app_images

SCRIPT = os.path.join(TOP, "tests", "setup", "registry", "registry")
FLEET_HOST = "sys1"


def _start_registries(state: str) -> dict[str, str]:
    started = subprocess.run(
        [SCRIPT, "start", "--dir", state], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if started.returncode != 0:
        pytest.fail(f"{SCRIPT} start failed:\n{started.stderr}")
    env = dict(os.environ)
    for line in started.stdout.splitlines():
        if line.startswith("export "):
            key, _sep, value = line[len("export ") :].partition("=")
            env[key] = value.strip("'\"")
    return env


@pytest.fixture(scope="session")
def app_registry(tmp_path_factory):
    """Build the images (the base layer is cached) and push them to the plain-HTTP registry."""
    state = os.environ.get("VOLT_REGISTRY_DIR", "/var/tmp/volt-registry")
    was_running = subprocess.run([SCRIPT, "status", "--dir", state], capture_output=True, check=False).returncode == 0
    registry = oci_images.registries(_start_registries(state))["http"]
    try:
        yield app_images.build_and_push(registry, tmp_path_factory.mktemp("app-images"))
    finally:
        if not was_running and "VOLT_REGISTRY_KEEP" not in os.environ:
            subprocess.run([SCRIPT, "stop", "--dir", state], check=False, capture_output=True)


@dataclasses.dataclass(frozen=True)
class FleetRegistry:
    """app_registry as the fleet host sees it: the same references work there."""

    app: app_images.AppRegistry
    host: str  # the fleet host, "sys1"
    ssh_config: str
    inventory: str

    @property
    def refs(self) -> dict[str, str]:
        return self.app.refs

    @property
    def port(self) -> int:
        return self.app.port

    @property
    def images(self) -> dict[str, app_images.AppImage]:
        return self.app.images

    @property
    def configs(self) -> dict[str, dict]:
        return self.app.configs

    def pull_args(self, key: str, **extra: Any) -> dict:
        return self.app.pull_args(key, **extra)


@pytest.fixture(scope="session")
def fleet_registry(app_registry, fleet):
    """An SSH reverse tunnel: sys1's 127.0.0.1:PORT is this machine's registry at 127.0.0.1:PORT."""
    ssh_config = os.path.join(fleet, "ssh_config")
    state = os.environ.get("VOLT_REGISTRY_DIR", "/var/tmp/volt-registry")
    marker = Path(state, "marker").read_text().strip()  # the registry's answers carry it
    tunnel = app_images.ReverseTunnel(
        ssh_config, FLEET_HOST, app_registry.port, expect_header=f"x-volt-registry: http-{marker}"
    )
    try:
        tunnel.start()
    except RuntimeError as err:
        tunnel.stop()
        pytest.fail(str(err))
    try:
        yield FleetRegistry(app_registry, FLEET_HOST, ssh_config, os.path.join(fleet, "inventory.yml"))
    finally:
        tunnel.stop()
