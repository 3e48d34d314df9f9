"""The collection as users drive it: ad hoc short names, module_defaults groups, the containers role."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BIN = os.path.dirname(sys.executable)


def ansible(*argv, cwd=TOP):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"),
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )
    return subprocess.run(
        [os.path.join(BIN, argv[0]), *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_ad_hoc_short_name_from_the_project_directory(proot_options, data_dir, busybox_rootfs, tmp_path):
    args = f"name=adhoc rootfs={busybox_rootfs} command='sleep 1000' data_dir={data_dir} {proot_options}"
    first = ansible("ansible", "localhost", "-m", "volt_container", "-a", args)
    assert first.returncode == 0, first.stdout + first.stderr
    second = ansible("ansible", "localhost", "-m", "volt_container", "-a", args, "-t", str(tmp_path / "tree"))
    assert second.returncode == 0
    result = json.loads((tmp_path / "tree" / "localhost").read_text())
    assert result["changed"] is False and result["container"]["status"] == "running"
    gone = ansible(
        "ansible",
        "localhost",
        "-m",
        "armoredgate.volt.volt_container",
        "-a",
        f"name=adhoc state=absent data_dir={data_dir} backend=proot",
    )
    assert gone.returncode == 0 and not os.path.exists(os.path.join(data_dir, "containers", "adhoc"))


def test_module_defaults_group_and_containers_role(target, data_dir, busybox_rootfs, tmp_path):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "volt_data_dir": data_dir,
                            "volt_backend": "proot",
                            # The role's own defaults for its containers: module_defaults do not
                            # reach options a task omits (ansible-core 2.19), and the role omits
                            # every option an item does not set.
                            **{f"volt_{key}": value for key, value in target.proot_options.items()},
                            "volt_containers": [
                                {"name": "site-a", "rootfs": busybox_rootfs, "command": ["sleep", "1000"]},
                                {
                                    "name": "site-b",
                                    "rootfs": busybox_rootfs,
                                    "command": ["sleep", "1000"],
                                    "state": "stopped",
                                },
                            ],
                        }
                    }
                }
            }
        )
    )
    # A task of the play gets proot_path (and allow_unsafe_proot for Debian's 5.1.0) from
    # module_defaults for the whole action group.
    play = tmp_path / "play.yml"
    play.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "containers role, and group defaults for the play's own tasks",
                    "hosts": "all",
                    "gather_facts": False,
                    "module_defaults": {
                        "group/armoredgate.volt.volt": dict(target.proot_options, data_dir=data_dir, backend="proot")
                    },
                    "roles": ["armoredgate.volt.containers"],
                    "tasks": [
                        {
                            "name": "A container of the play",
                            "armoredgate.volt.volt_container": {
                                "name": "site-c",
                                "rootfs": busybox_rootfs,
                                "command": ["sleep", "1000"],
                            },
                        }
                    ],
                }
            ]
        )
    )

    def run():
        result = ansible("ansible-playbook", "-i", str(inventory), str(play))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return int(re.search(r"localhost\s*:.*changed=(\d+)", result.stdout).group(1))

    assert run() == 2  # the role's task (two items, both changed) and the play's task
    states = {
        name: json.load(open(os.path.join(data_dir, "containers", name, "state.json")))["status"]
        for name in ("site-a", "site-b", "site-c")
    }
    assert states == {"site-a": "running", "site-b": "created", "site-c": "running"}
    assert run() == 0


def test_concurrent_runs_wait_for_each_other(proot_options, data_dir, busybox_rootfs, tmp_path):
    args = f"name=race rootfs={busybox_rootfs} command='sleep 1000' data_dir={data_dir} {proot_options}"
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(TOP, "ansible.cfg"), ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    runs = [
        subprocess.Popen(
            [
                os.path.join(BIN, "ansible"),
                "localhost",
                "-m",
                "volt_container",
                "-a",
                args,
                "-t",
                str(tmp_path / str(i)),
            ],
            cwd=TOP,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(3)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0, 0]
    results = [json.loads((tmp_path / str(i) / "localhost").read_text()) for i in range(3)]
    assert sorted(result["changed"] for result in results) == [False, False, True]
    assert len({result["container"]["pid"] for result in results}) == 1
    assert os.listdir(os.path.join(data_dir, "containers")) == ["race"]
