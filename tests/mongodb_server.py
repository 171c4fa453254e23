"""Pytest plugin: a throwaway MongoDB-compatible server for the whole run, started before Django reads its settings.

Set TEST_MONGODB_URI to run the suite against another MongoDB instead (a real mongod, a replica set, Atlas); the suite
then creates and drops its own `test_<MONGODB_DB>` database there.
"""

import os
import tempfile
from collections.abc import Generator

import pytest

from rideease.embedded_db import EmbeddedDb, embedded_db_start, embedded_db_stop, free_port

_server: EmbeddedDb | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> Generator[None]:
    # Runs around pytest-django's own hook, which loads the settings: the environment must be ready before it.
    global _server
    os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-that-is-long-enough-for-django-checks-0123456789")
    os.environ["DJANGO_HTTPS"] = "false"
    os.environ.setdefault("DJANGO_STATIC_ROOT", tempfile.mkdtemp(prefix="rideease-static-"))
    uri = os.environ.get("TEST_MONGODB_URI")
    if not uri:
        _server = embedded_db_start(port=free_port(), storage=":memory:")
        uri = _server.uri
    os.environ["MONGODB_URI"] = uri
    return (yield)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        embedded_db_stop(_server)
