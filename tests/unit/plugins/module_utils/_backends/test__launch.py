"""What a container runs: its options over its image's config, by Docker's rules."""

from __future__ import annotations

import os

from ansible_collections.armoredgate.volt.plugins.module_utils._backends._launch import Launch

IMAGE = {
    "entrypoint": ["/docker-entrypoint.sh"],
    "cmd": ["nginx", "-g", "daemon off;"],
    "env": {"PATH": "/opt/bin:/usr/bin", "A": "image"},
    "workdir": "/srv",
    "user": "nginx",
    "stop_signal": "SIGQUIT",
}


def test_the_image_runs_as_its_author_meant():
    launch = Launch({"image_config": IMAGE})
    assert launch.argv == ["/docker-entrypoint.sh", "nginx", "-g", "daemon off;"]
    assert launch.env == {"PATH": "/opt/bin:/usr/bin", "A": "image"}
    assert (launch.workdir, launch.user, launch.stop_signal) == ("/srv", "nginx", "SIGQUIT")
    assert launch.from_image and launch.origin == "the image's entrypoint"


def test_command_replaces_cmd_after_the_image_entrypoint():
    launch = Launch({"image_config": IMAGE, "command": ["nginx", "-T"]})
    assert launch.argv == ["/docker-entrypoint.sh", "nginx", "-T"] and not launch.from_image


def test_a_new_entrypoint_drops_the_image_cmd():
    assert Launch({"image_config": IMAGE, "entrypoint": ["/bin/sh"]}).argv == ["/bin/sh"]
    launch = Launch({"image_config": IMAGE, "entrypoint": ["/bin/sh"], "command": ["-c", "true"]})
    assert launch.argv == ["/bin/sh", "-c", "true"] and launch.origin == "entrypoint"
    # An empty entrypoint: only the command.
    assert Launch({"image_config": IMAGE, "entrypoint": [], "command": ["/bin/true"]}).argv == ["/bin/true"]


def test_the_task_wins_over_the_image():
    config = {
        "image_config": IMAGE,
        "env": {"A": "task", "B": "task"},
        "workdir": "/",
        "user": "0",
        "stop_signal": "SIGINT",
    }
    launch = Launch(config)
    assert launch.env == {"PATH": "/opt/bin:/usr/bin", "A": "task", "B": "task"}
    assert (launch.workdir, launch.user, launch.stop_signal) == ("/", "0", "SIGINT")
    assert launch.as_root


def test_without_an_image_config_the_seed_guess_and_defaults_apply(tmp_path):
    os.makedirs(tmp_path / "bin")
    (tmp_path / "bin" / "sh").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin" / "sh", 0o755)
    launch = Launch({}, str(tmp_path))
    assert launch.argv == ["/bin/sh"] and launch.origin == "the detected entrypoint"
    assert (launch.workdir, launch.user, launch.stop_signal, launch.env) == ("/", None, "SIGTERM", {})
    assert Launch({}).argv is None  # no root to look in: nothing is guessed
