"""Shared fixtures: API and admin clients over the test database."""

import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client, override_settings
from rest_framework.test import APIClient

from recommendations.runtime import runtime_shutdown
from tests.s3_server import s3_server

ADMIN_KEY = "test-admin-key-0123456789"


@pytest.fixture(scope="session", autouse=True)
def collected_static_files() -> None:
    """Collect static files once, as a deployment does: the admin's pages need the manifest."""
    call_command("collectstatic", "--noinput", verbosity=0)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with the shared bucket created."""
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_client(db: Any) -> Client:
    user = get_user_model().objects.create_superuser(username="ops", email="ops@example.com", password="s3cret-pass")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def serving_env(db: Any, tmp_path: Path) -> Iterator[Path]:
    """Registry, model cache and trace spool in a temporary folder, and a serving runtime of the test's own.

    Depends on `db` so that the runtime (and its background writer) stops before the database is flushed.
    """
    runtime_shutdown()
    with override_settings(
        MODEL_REGISTRY_URI=str(tmp_path / "registry"),
        MODEL_CACHE_DIR=tmp_path / "cache",
        TRACE_SPOOL_DIR=tmp_path / "spool",
        TRACE_FLUSH_SECONDS=0.05,
        MODEL_ADMIN_API_KEY=ADMIN_KEY,
    ):
        yield tmp_path
        runtime_shutdown()


@pytest.fixture(scope="session")
def spark_session() -> Iterator[Any]:
    """One Spark `local[2]` session for the whole run (UI off, two shuffle partitions): the Spark engine's
    getOrCreate() finds it, so each test pays for the JVM once. Skipped, with the reason, only without Java."""
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        pytest.skip("no Java runtime: the Spark engine needs Java 17 (apt-get install openjdk-17-jre-headless)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # pyspark on pandas 3; the engine never uses pandas
        from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("rideease-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # py4j says goodbye at interpreter exit, after pytest has closed the streams it would write to.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    yield session
    session.stop()
