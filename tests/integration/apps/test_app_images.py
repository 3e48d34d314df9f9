"""Smoke test of the application-image fixtures: what the registry serves is what was built, every
image pulls with volt_image here, and one pulls on the fleet host sys1 through the tunnel.
(Running the images is for the tests that use these fixtures.)"""

from __future__ import annotations

import json
import os
import shutil
import stat

from ..images import oci_images
from ..targets import FleetSystemd
from . import app_images

# The fleet host's data dir for this test only (the systemd target's is /var/lib/volt).
FLEET_DATA_DIR = "/var/tmp/volt-app-images-smoke"


def test_the_registry_serves_the_images_as_built(app_registry):
    http = oci_images.RegistryHTTP(app_registry.registry)
    base = app_registry.base
    platform = app_images.oci_platform(app_images.dpkg_architecture())
    for key, image in app_registry.images.items():
        assert image.reference == f"127.0.0.1:{app_registry.port}/volt-test/{key}:1"
        media_type, raw, _digest = http.get_manifest(image.repo, image.tag)
        assert media_type == oci_images.MT_OCI_MANIFEST and raw == image.manifest_raw
        config_raw = http.get_blob(image.repo, image.manifest["config"]["digest"])
        assert json.loads(config_raw) == app_registry.configs[key]
        assert image.layers[0] == base.digest and image.diff_ids[0] == base.diff_id  # one shared base blob
        assert len(image.layers) == (1 if key == "fail" else 2)
        config = image.config
        assert {k: config[k] for k in platform} == platform
        assert len(config["rootfs"]["diff_ids"]) == sum(not h.get("empty_layer") for h in config["history"])
        assert app_images.PATH_ENV in image.container_config["Env"]
    web, kv, pyapp = (app_registry.images[k].container_config for k in ("web", "kv", "pyapp"))
    assert web["Entrypoint"] == ["/docker-entrypoint.sh"] and web["StopSignal"] == "SIGQUIT"
    assert kv["User"] == "redis" and kv["WorkingDir"] == "/data" and "StopSignal" not in kv
    assert pyapp["StopSignal"] == "SIGINT" and "APP_GREETING=hello from the image" in pyapp["Env"]
    assert app_registry.configs["fail"]["config"]["Cmd"][0] == "/bin/sh"


def test_every_image_pulls_here(app_registry, localhost, tmp_path):
    data_dir = str(tmp_path / "volt")
    trees = {}
    try:
        for key in app_registry.images:
            result = localhost(
                "armoredgate.volt.volt_image", name=f"app-{key}", data_dir=data_dir, **app_registry.pull_args(key)
            )
            assert not result.get("failed"), result.get("msg")
            assert result["image"]["digest"] == app_registry.images[key].digest
            if trees:  # the base layer came with the first image
                assert result["layers"][0]["cached"] is True, result["layers"]
            trees[key] = result["image"]["path"]

        web = trees["web"]
        entrypoint = os.stat(os.path.join(web, "docker-entrypoint.sh"))
        assert stat.S_ISREG(entrypoint.st_mode) and entrypoint.st_mode & 0o111
        assert open(os.path.join(web, "srv/www/index.html")).read() == app_images.WEB_BODY
        assert os.path.exists(os.path.join(web, "usr/sbin/nginx"))
        assert not os.path.lexists(os.path.join(web, "etc/nginx/sites-enabled/default"))  # whited out
        assert os.readlink(os.path.join(web, "var/log/nginx/access.log")) == "/dev/stdout"
        for tree in trees.values():
            assert os.listdir(os.path.join(tree, "dev")) == []
            assert os.listdir(os.path.join(tree, "var/lib/apt/lists")) == []
            assert not any(name.endswith(".deb") for name in os.listdir(os.path.join(tree, "var/cache/apt/archives")))
        data = os.stat(os.path.join(trees["kv"], "data"))
        assert [data.st_uid, data.st_gid] == app_registry.base.users["redis"] and stat.S_IMODE(data.st_mode) == 0o755
        assert os.path.exists(os.path.join(trees["kv"], "usr/bin/redis-server"))
        assert os.path.exists(os.path.join(trees["pyapp"], "app/server.py"))
        assert os.path.exists(os.path.join(trees["pyapp"], "usr/lib/python3.11/http/server.py"))
        assert not os.path.exists(os.path.join(trees["fail"], "app"))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def test_the_fleet_host_pulls_through_the_tunnel(fleet_registry, ansible_adhoc):
    sys1 = FleetSystemd(
        "systemd",
        ansible_adhoc,
        fleet_registry.host,
        fleet_registry.inventory,
        data_dir=FLEET_DATA_DIR,
        ssh_config=fleet_registry.ssh_config,
    )
    sys1.sh(f"rm -rf {FLEET_DATA_DIR}")
    try:
        result = sys1.volt("volt_image", name="app-web", **fleet_registry.pull_args("web"))
        assert not result.get("failed"), result.get("msg")
        assert result["image"]["digest"] == fleet_registry.images["web"].digest
        assert sys1.read(os.path.join(result["image"]["path"], "srv/www/index.html")) == app_images.WEB_BODY
    finally:
        sys1.sh(f"rm -rf {FLEET_DATA_DIR}", check=False)
