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
    assert image_dir_name("debian:bookworm") == "debian_bookworm"
    assert image_dir_name("team/app:1.2") == "team_app_1.2"
    for bad in ("../etc", "a/../../b", "/abs", "a b"):
        with pytest.raises(VoltError):
            image_dir_name(bad)


def test_absolute_path():
    assert absolute_path("//srv/./www/", "x") == "/srv/www"
    with pytest.raises(VoltError, match="rootfs must be an absolute path, got 'rel'"):
        absolute_path("rel", "rootfs")
