"""build-proot.sh --print-mirror: the Debian mirror the proot source (and the test fleet's and the
execution environment's Debian trees) come from. It reads apt's configuration and changes nothing."""

from __future__ import annotations

import os
import subprocess

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BUILD_PROOT = os.path.join(TOP, "roles", "proot", "files", "build-proot.sh")

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/apt-get"), reason="needs apt")


def print_mirror(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "VOLT_DEBIAN_MIRROR"}
    return subprocess.run(
        [BUILD_PROOT, "--print-mirror", *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def apt_config(tmp_path, sources: str) -> str:
    (tmp_path / "sources.list").write_text(sources)
    (tmp_path / "parts").mkdir()
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    config = tmp_path / "apt.conf"
    config.write_text(
        f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\n'
        f'Dir::Etc::sourceparts "{tmp_path}/parts";\n'
        f'Dir::State::Lists "{tmp_path}/lists";\n'
    )
    return str(config)


def test_the_first_debian_main_archive_in_apt_sources(tmp_path):
    config = apt_config(
        tmp_path,
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb http://third-party.example/repo stable main\n"
        "deb http://mirror.example/debian/ bookworm-updates main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://mirror.example/debian/ bookworm main\n",
    )
    result = print_mirror(APT_CONFIG=config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://mirror.example/debian\n"


def test_the_option_and_the_environment_win(tmp_path):
    config = apt_config(tmp_path, "deb http://mirror.example/debian bookworm main\n")
    assert print_mirror(APT_CONFIG=config, VOLT_DEBIAN_MIRROR="http://env.example/debian/").stdout == (
        "http://env.example/debian\n"
    )
    given = print_mirror(
        "--mirror", "http://arg.example/debian", APT_CONFIG=config, VOLT_DEBIAN_MIRROR="http://env.example/debian"
    )
    assert given.stdout == "http://arg.example/debian\n"


def test_no_debian_mirror_is_a_clear_error(tmp_path):
    config = apt_config(tmp_path, "deb http://third-party.example/repo stable main\n")
    result = print_mirror(APT_CONFIG=config)
    assert result.returncode != 0 and result.stdout == ""
    assert "no Debian mirror in apt's sources" in result.stderr and "VOLT_DEBIAN_MIRROR" in result.stderr
