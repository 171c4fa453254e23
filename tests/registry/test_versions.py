"""Version strings: parsing, ordering and the next version."""

import pytest

from registry.versions import version_from_key, version_key, version_next_minor, version_parse


@pytest.mark.parametrize("version", ["1.0.0", "v1.0", "v01.0.0", "v1.0.0-rc1", "V1.0.0", "v1.0.0 ", "v1234567.0.0"])
def test_malformed_versions_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="vMAJOR.MINOR.PATCH"):
        version_parse(version)


def test_keys_sort_numerically_and_round_trip() -> None:
    assert version_key("v1.10.0") > version_key("v1.9.0") > version_key("v1.8.99")
    assert version_from_key(version_key("v12.345.6")) == "v12.345.6"


def test_the_next_version_is_a_minor_bump() -> None:
    assert version_next_minor(None) == "v1.0.0"
    assert version_next_minor("v1.2.0") == "v1.3.0"
    assert version_next_minor("v1.2.5") == "v1.3.0"
    assert version_next_minor("v2.9.0") == "v2.10.0"
