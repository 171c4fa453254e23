""".env.example lists every environment variable the code reads, and nothing it does not."""

import re

from tests.servers import BASE_DIR

SOURCE_DIRS = ["rideease", "recommendations", "registry", "experiments", "tracing", "monitoring"]
# The test suite's own configuration lives in its database plugin.
TEST_CONFIG = BASE_DIR / "tests" / "mongodb_server.py"
READ = re.compile(
    r"""(?:env_(?:str|int|bool|list|float)|environ(?:\.get|\.setdefault)?|getenv)\(\s*["']([A-Z][A-Z0-9_]+)["']"""
)
# Set by the tooling, not by an operator.
NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE"}


def variables_read_by_code() -> set[str]:
    names: set[str] = set()
    paths = [path for directory in SOURCE_DIRS for path in (BASE_DIR / directory).rglob("*.py")]
    for path in [*paths, TEST_CONFIG]:
        names.update(READ.findall(path.read_text()))
    return names - NOT_CONFIGURATION


def variables_documented() -> set[str]:
    text = (BASE_DIR / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_env_example_matches_the_code() -> None:
    read, documented = variables_read_by_code(), variables_documented()
    assert read - documented == set(), "read by the code but missing from .env.example"
    assert documented - read == set(), "documented in .env.example but read nowhere"
