from __future__ import annotations

import pytest

from ansible_collections.armoredgate.volt.plugins.module_utils._errors import VoltError
from ansible_collections.armoredgate.volt.plugins.module_utils._validate import (
    absolute_path,
    image_dir_name,
    validate_name,
)


@pytest.mark.parametrize("name", ["a", "web-1", "db_2.test", "A" * 64, "9lives"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "-x", "_x", "a b", "A" * 65, "a\n", None, 3])
def test_bad_names_are_named_in_the_error(name):
    with pytest.raises(VoltError) as info:
        validate_name(name)
    assert repr(name) in info.value.msg


def test_image_names_map_to_store_directories():
    assert image_dir_name("busybox") == "busybox"
    assert image_dir_name("debian-12") == "debian-12"
    assert image_dir_name("debian:bookworm") == "debian%3Abookworm"
    assert image_dir_name("team/app:1.2") == "team%2Fapp%3A1.2"
    for bad in ("../etc", "a/../../b", "/abs", "a b"):
        with pytest.raises(VoltError):
            image_dir_name(bad)


def test_absolute_path():
    assert absolute_path("//srv/./www/", "x") == "/srv/www"
    with pytest.raises(VoltError, match="rootfs must be an absolute path, got 'rel'"):
        absolute_path("rel", "rootfs")


@pytest.mark.parametrize("value", ["/srv\n[Service]", "/srv\rx", "/a\x00b", "/a\x7fb", "/a\tb"])
def test_paths_with_control_characters_are_refused(value):
    """A newline in a path would start a new key in a systemd file, or a new line in a log."""
    with pytest.raises(VoltError, match="data_dir must not contain control characters"):
        absolute_path(value, "data_dir")


def test_image_names_never_share_a_store_directory():
    """team/app, team_app, team:app and team@app were one directory: removing one removed all."""
    names = ["team/app", "team_app", "team:app", "team@app", "team_2Fapp", "a:b/c", "a/b:c", "a_b_c"]
    directories = [image_dir_name(name) for name in names]
    assert len(set(directories)) == len(names), dict(zip(names, directories))
    assert all("/" not in directory and not directory.startswith(".") for directory in directories)


def test_image_names_too_long_for_a_directory_are_named():
    with pytest.raises(VoltError, match="longer than 200"):
        image_dir_name("a" + ":" * 100)
