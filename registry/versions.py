"""Semantic versions of models, `vMAJOR.MINOR.PATCH` (pure Python)."""

import re

_SEMVER = re.compile(r"^v(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")
_PART = 1_000_000
FIRST_VERSION = "v1.0.0"


def version_parse(version: str) -> tuple[int, int, int]:
    """Split `vX.Y.Z` into integers; raise ValueError for anything else (each part at most six digits)."""
    match = _SEMVER.match(version)
    if not match:
        raise ValueError(f"{version!r} is not a version of the form vMAJOR.MINOR.PATCH (e.g. v1.3.0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def version_key(version: str) -> int:
    """An integer that sorts like the version: v1.10.0 > v1.9.0."""
    major, minor, patch = version_parse(version)
    return (major * _PART + minor) * _PART + patch


def version_from_key(key: int) -> str:
    major, rest = divmod(key, _PART * _PART)
    minor, patch = divmod(rest, _PART)
    return f"v{major}.{minor}.{patch}"


def version_next_minor(highest: str | None) -> str:
    """The minor bump of the highest version (v1.2.0 -> v1.3.0, v1.2.5 -> v1.3.0); v1.0.0 when there is none."""
    if highest is None:
        return FIRST_VERSION
    major, minor, _ = version_parse(highest)
    return f"v{major}.{minor + 1}.0"
