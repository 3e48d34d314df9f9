"""proot-only scenarios run on this machine, once per proot binary (Debian's 5.1.0 and 5.4.0)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ..conftest import PROOT_BINARIES, prepared_target


@pytest.fixture(params=sorted(PROOT_BINARIES))
def target(request, ansible_adhoc, tmp_path):
    """Overrides the shared fixture: the proot backend on this machine, with each binary."""
    yield from prepared_target(request, ansible_adhoc, tmp_path)


@pytest.fixture
def proot(target):
    return target.proot_path


@pytest.fixture
def proot_options(target):
    """backend=proot (auto would pick systemd where systemd is PID 1), proot_path and, for a
    binary that needs it, allow_unsafe_proot: as key=value words."""
    return "backend=proot " + " ".join(
        f"{key}={str(value).lower() if isinstance(value, bool) else value}"
        for key, value in target.proot_options.items()
    )


@pytest.fixture
def data_dir(target):
    return target.data_dir


@pytest.fixture
def volt(target):
    """volt(module='volt_container', check=False, diff=False, **args): runs the module by FQCN."""
    return target.volt


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory):
    """A tiny real root filesystem on this machine: Debian's static busybox and its applets."""
    root = tmp_path_factory.mktemp("busybox-rootfs")
    for directory in ("bin", "etc", "root", "tmp", "proc", "dev", "sys", "srv"):
        (root / directory).mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    applets = subprocess.run([str(root / "bin" / "busybox"), "--list"], capture_output=True, text=True, check=True)
    for applet in applets.stdout.split():
        if applet != "busybox":
            os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "os-release").write_text('NAME="Volt test"\nPRETTY_NAME="Volt test (busybox)"\n')
    return str(root)
