from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._files import _rootfs


def make_exe(path, text="#!/bin/sh\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o755)


def test_absolute_symlinks_resolve_inside_the_root(tmp_path):
    root = str(tmp_path)
    make_exe(os.path.join(root, "usr/bin/python3.11"))
    os.symlink("/usr/bin/python3.11", os.path.join(root, "usr/bin/python3"))
    assert _rootfs.resolve_in_root(root, "/usr/bin/python3") == os.path.join(root, "usr/bin/python3.11")


def test_symlinks_never_escape_to_the_host(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "bin"))
    # /bin/sh exists on the host; inside the root the link points at nothing.
    os.symlink("/bin/sh", os.path.join(root, "bin", "sh"))
    os.symlink("../../../../../../../bin/sh", os.path.join(root, "bin", "dotdot"))
    assert _rootfs.resolve_in_root(root, "/bin/sh") is None
    assert _rootfs.resolve_in_root(root, "/bin/dotdot") is None
    assert _rootfs.detect_entrypoint(root) is None


def test_symlink_loops_end(tmp_path):
    root = str(tmp_path)
    os.symlink("/b", os.path.join(root, "a"))
    os.symlink("/a", os.path.join(root, "b"))
    assert _rootfs.resolve_in_root(root, "/a") is None


def test_entrypoint_detection_order(tmp_path):
    root = str(tmp_path)
    make_exe(os.path.join(root, "bin/sh"))
    assert _rootfs.detect_entrypoint(root) == ["/bin/sh"]
    make_exe(os.path.join(root, "usr/bin/python3"))
    assert _rootfs.detect_entrypoint(root) == ["/usr/bin/python3"]
    make_exe(os.path.join(root, "docker-entrypoint.sh"))
    assert _rootfs.detect_entrypoint(root) == ["/docker-entrypoint.sh"]
    make_exe(os.path.join(root, "usr/sbin/nginx"))
    assert _rootfs.detect_entrypoint(root) == ["/usr/sbin/nginx", "-g", "daemon off; master_process off;"]
    os.makedirs(os.path.join(root, "init"))  # a directory is not an entrypoint
    assert _rootfs.detect_entrypoint(root)[0] == "/usr/sbin/nginx"
    os.rmdir(os.path.join(root, "init"))
    make_exe(os.path.join(root, "init"))
    assert _rootfs.detect_entrypoint(root) == ["/init"]


def test_non_executable_is_skipped(tmp_path):
    root = str(tmp_path)
    make_exe(os.path.join(root, "init"))
    os.chmod(os.path.join(root, "init"), 0o644)
    make_exe(os.path.join(root, "bin/sh"))
    assert _rootfs.detect_entrypoint(root) == ["/bin/sh"]


def test_os_release(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "usr/lib"))
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "usr/lib/os-release"), "w") as handle:
        handle.write('NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    os.symlink("../usr/lib/os-release", os.path.join(root, "etc/os-release"))
    assert _rootfs.os_release(root) == "Debian GNU/Linux 12 (bookworm)"
    assert _rootfs.os_release(str(tmp_path / "empty")) is None


def test_remove_tree_handles_locked_directories(tmp_path):
    victim = tmp_path / "victim"
    (victim / "a" / "b").mkdir(parents=True)
    (victim / "a" / "b" / "file").write_text("x")
    os.chmod(victim / "a" / "b", 0)
    os.chmod(victim / "a", stat.S_IRUSR | stat.S_IXUSR)
    _rootfs.remove_tree(str(victim))
    assert not victim.exists()
    _rootfs.remove_tree(str(victim))  # absent is fine


def test_sanitize_removes_device_nodes_and_setid_bits(tmp_path):
    """An image's device nodes go; setuid/setgid bits go when asked (proot trees), symlinks are
    never followed (their targets keep their bits)."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "bin").mkdir(parents=True)
    outside.write_text("host")
    os.chmod(outside, 0o4755)
    make_exe(str(root / "bin" / "su"))
    os.chmod(root / "bin" / "su", 0o4755)
    make_exe(str(root / "bin" / "wall"))
    os.chmod(root / "bin" / "wall", 0o2755)
    os.symlink(str(outside), root / "bin" / "link")
    os.mknod(root / "kmem", stat.S_IFCHR | 0o666, os.makedev(1, 2))
    os.mkfifo(root / "fifo")
    kept = _rootfs.sanitize_tree(str(root), strip_setid=False)
    assert kept == 1 and not os.path.lexists(root / "kmem")
    assert stat.S_IMODE(os.stat(root / "bin" / "su").st_mode) == 0o4755
    assert _rootfs.sanitize_tree(str(root), strip_setid=True) == 2
    assert stat.S_IMODE(os.stat(root / "bin" / "su").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(root / "bin" / "wall").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o4755
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("0:abc", "group 'abc' is not in the container's /etc/group"),
        ("4294967295", r"an id \(0-4294967294\)"),
        ("0:99999999999", r"an id \(0-4294967294\)"),
        (":5", "is not a user or user:group"),
        ("5:", "is not a user or user:group"),
        ("a b", "is not a user or user:group"),
        ("nobody-here", "'nobody-here' is not in the container's /etc/passwd"),
    ],
)
def test_bad_users_are_refused(tmp_path, user, message):
    with pytest.raises(VoltError, match=message):
        _rootfs.resolve_user(str(tmp_path), user)


def test_a_hostile_passwd_is_no_answer(tmp_path):
    """Non-numeric ids in the guest's /etc/passwd are skipped, not a traceback."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("evil:x:abc:0::/:/bin/sh\nok:x:7:8::/home/ok:/bin/sh\n")
    assert _rootfs.resolve_user(str(tmp_path), "ok") == (7, 8, "/home/ok")
    with pytest.raises(VoltError, match="not in the container's /etc/passwd"):
        _rootfs.resolve_user(str(tmp_path), "evil")
