"""Users inside containers through the armoredgate.volt.volt connection: remote_user and become.

On proot both are proot's emulated identity, on systemd real ones; become never runs sudo or su
in the container (the image has neither). Proven by become.yml and by ansible-core's own `copy`
integration target (from the source distribution of the installed ansible-core, fetched and
pinned by tests/setup/ansible-core-targets.sh), run through the plugin on this machine (proot),
on plain1 (proot over SSH) and on sys1 (systemd-nspawn)."""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from ..conftest import TOP
from .test_connection import Topology, run

HERE = os.path.dirname(os.path.abspath(__file__))
TOPOLOGIES = ["local-proot", "plain1-proot", "sys1-systemd"]
# The image's unprivileged users: (name, uid); each has its group of the same name and id.
USERS = [("volt-user", 1000), ("volt-other", 1001)]

# ansible-core's copy target and the targets it depends on (its meta/main.yml).
COPY_TARGETS = ["copy", "prepare_tests", "setup_nobody", "setup_remote_tmp_dir"]
# Left out of the copy target: acls.yml reads ACLs with getfacl, and the test image (the fleet's
# minbase Debian) has no acl package; the test fetches nothing but ansible-core's source to add
# it. become.yml checks what it is about instead (an unprivileged become_user's copy to ~, with
# its mode and no ACL left on it).
ACLS_IMPORT = "    - import_tasks: acls.yml\n      when: ansible_system == 'Linux'\n"
# The play that runs the copy target as ansible-test would (facts gathered, the role's
# dependencies first).
COPY_PLAYBOOK = """\
- name: ansible-core's copy integration target, through armoredgate.volt.volt
  hosts: all
  roles:
    - copy
"""
# Made on the controller by the copy target (delegate_to: localhost) and never removed.
CONTROLLER_PATHS = ["/tmp/ansible-test-abs-link", "/tmp/ansible-test-abs-link-dir", "/tmp/ansible-test-link-dir"]
# The copy target runs its tests.yml with `remote_user: tmp_ansible_test_user`, the user it makes,
# and those tasks become root or nobody. Under ansible-test that keyword changes nothing: it runs
# the target with the local connection, or over SSH with ansible_user=root, which overrides it.
# Through this connection, on proot, it does change the user (proot's emulated identity, which
# may do what the host user may: root here). With systemd's real identities the target cannot run
# as that user: it writes, as tmp_ansible_test_user, into directories its root tasks made (its
# controller's local_temp_dir reused on the target, where it only exists if a root task made it),
# and fails there. So on systemd it runs as ansible-test's SSH inventory has it (ansible_user=root;
# become to nobody still switches identity), and become.yml is what proves an unprivileged
# remote_user with become there.
COPY_HOST_VARS = {"proot": {}, "systemd": {"ansible_user": "root"}}
# systemd-nspawn mounts a tmpfs on the container's /tmp, which the connection's file copies (made
# through the container's root filesystem on its host) do not reach. Two blocks of the target put
# Ansible's remote_tmp there (its atime/mtime checks): on systemd they keep Ansible's default.
COPY_EXTRA_VARS = {"proot": [], "systemd": ["-e", "ansible_remote_tmp=~/.ansible/tmp"]}


class BecomeTopology(Topology):
    container = "become"
    image = "debian-users"

    def customize_image(self, tree: str) -> None:
        """Unprivileged users with homes; root's ~/.ssh/authorized_keys and /etc/sudoers.d, which
        the copy target copies from and into (its test hosts have SSH and sudo)."""
        for name, uid in USERS:
            for path, line in (
                ("etc/passwd", f"{name}:x:{uid}:{uid}:Volt test user:/home/{name}:/bin/bash"),
                ("etc/group", f"{name}:x:{uid}:"),
                ("etc/shadow", f"{name}:!:20000:0:99999:7:::"),
                ("etc/gshadow", f"{name}:!::"),
            ):
                with open(os.path.join(tree, path), "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
            home = os.path.join(tree, "home", name)
            os.makedirs(home, mode=0o750)
            os.chown(home, uid, uid)
        os.makedirs(os.path.join(tree, "root", ".ssh"), mode=0o700, exist_ok=True)
        with open(os.path.join(tree, "root", ".ssh", "authorized_keys"), "w", encoding="utf-8"):
            pass
        os.makedirs(os.path.join(tree, "etc", "sudoers.d"), mode=0o750, exist_ok=True)


@pytest.fixture(params=TOPOLOGIES)
def topology(request, fleet, tmp_path):
    chosen = BecomeTopology(request.param, fleet, tmp_path)
    chosen.prepare()
    yield chosen
    chosen.cleanup()


@pytest.fixture(scope="session")
def core_targets():
    """The integration targets of the installed ansible-core's source (pinned, cached)."""
    script = os.path.join(TOP, "tests", "setup", "ansible-core-targets.sh")
    result = subprocess.run(
        [script], capture_output=True, text=True, check=False, env=dict(os.environ, PYTHON=sys.executable)
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def playbook(topology, path, *extra, host_vars=None, env=None):
    started = time.monotonic()
    result = run(
        ["ansible-playbook", "-i", topology.inventory(**(host_vars or {})), path, *extra],
        env=env or {},
    )
    print(f"{os.path.basename(path)} on {topology.ident}: {time.monotonic() - started:.1f} s")
    return result


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "no-pipelining"])
def test_remote_user_and_become(topology, pipelining, tmp_path):
    local_dir = tmp_path / "local"
    local_dir.mkdir()
    result = playbook(
        topology,
        os.path.join(HERE, "become.yml"),
        "-e",
        f"target_hosts=all local_dir={local_dir} real_identities={topology.backend == 'systemd'}",
        host_vars={"ansible_user": "volt-user"},
        env={"ANSIBLE_PIPELINING": str(pipelining)},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    # On the host: systemd's files have real owners; under proot everything a program in the
    # container made belongs to the host user running proot (root on these hosts).
    owner = 1000 if topology.backend == "systemd" else 0
    assert os.stat(topology.rootfs_path("/var/tmp/volt-become/mine.txt")).st_uid == owner
    assert os.stat(topology.rootfs_path("/root/volt-become.txt")).st_uid == 0


@pytest.fixture
def controller_paths():
    """The copy target's fixed paths on the controller, which it leaves behind (and a second run
    would then build on): removed before and after, one run of the target at a time."""
    lock = os.path.join(tempfile.gettempdir(), "armoredgate-volt-copy-target.lock")
    with open(lock, "w", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for path in CONTROLLER_PATHS:
            subprocess.run(["rm", "-rf", path], check=True)
        yield
        for path in CONTROLLER_PATHS:
            subprocess.run(["rm", "-rf", path], check=True)


# The copy target takes minutes per topology: once per backend (plain1's proot is local-proot's
# code over SSH, which test_remote_user_and_become covers).
@pytest.mark.parametrize("topology", ["local-proot", "sys1-systemd"], indirect=True)
def test_ansible_core_copy_target(topology, core_targets, controller_paths, tmp_path):
    roles = tmp_path / "targets"
    for name in COPY_TARGETS:
        shutil.copytree(os.path.join(core_targets, name), roles / name, symlinks=True)
    main = roles / "copy" / "tasks" / "main.yml"
    text = main.read_text(encoding="utf-8")
    assert text.count(ACLS_IMPORT) == 1, "the copy target changed: review what this test leaves out"
    main.write_text(text.replace(ACLS_IMPORT, ""), encoding="utf-8")
    wrapper = tmp_path / "copy.yml"
    wrapper.write_text(COPY_PLAYBOOK, encoding="utf-8")
    # With pipelining, as ansible-test runs its targets (become.yml runs both ways).
    env = {"ANSIBLE_ROLES_PATH": str(roles), "ANSIBLE_PIPELINING": "True"}
    result = playbook(
        topology, str(wrapper), *COPY_EXTRA_VARS[topology.backend], host_vars=COPY_HOST_VARS[topology.backend], env=env
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    recap = result.stdout[result.stdout.rindex("PLAY RECAP") :]
    print(recap)
    assert "failed=0" in recap and "unreachable=0" in recap, recap


ASYNC_PLAYBOOK = """\
- name: ansible-core's async integration target, through armoredgate.volt.volt
  hosts: all
  roles:
    - async
"""


# poll: 0 returns at once and the job finishes in the background: proot keeps tracing it after
# the command that started it has ended (the connection returns when that command does).
@pytest.mark.parametrize("topology", ["local-proot", "plain1-proot", "sys1-systemd"], indirect=True)
def test_ansible_core_async_target(topology, core_targets, tmp_path):
    roles = tmp_path / "targets"
    for name in ("async", "prepare_tests"):
        shutil.copytree(os.path.join(core_targets, name), roles / name, symlinks=True)
    wrapper = tmp_path / "async.yml"
    wrapper.write_text(ASYNC_PLAYBOOK, encoding="utf-8")
    env = {"ANSIBLE_ROLES_PATH": str(roles), "ANSIBLE_PIPELINING": "True"}
    # Two of its tasks run ansible-playbook on the controller itself (delegate_to: localhost, not
    # through this plugin), where async_wrapper writes under $HOME and async_status looks under
    # the passwd home: they must agree, as they do for a user whose HOME is not overridden.
    env["HOME"] = pwd.getpwuid(os.getuid()).pw_dir
    result = playbook(topology, str(wrapper), host_vars=COPY_HOST_VARS[topology.backend], env=env)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
    recap = result.stdout[result.stdout.rindex("PLAY RECAP") :]
    print(recap)
    assert "failed=0" in recap and "unreachable=0" in recap, recap
