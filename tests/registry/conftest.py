"""The registry's tests: object storage servers on loopback (S3 by moto's server, GCS by an emulator), registered
versions, an admin API client."""

from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from gcp_storage_emulator.server import create_server
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from rest_framework.test import APIClient

from registry.storage import GCS_EMULATOR_PROJECT
from tests.conftest import ADMIN_KEY
from tests.s3_server import FAKE_AWS_ENV

GCS_BUCKET = "rideease-artifacts-gcs"


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """gcp-storage-emulator in this process, in memory, on a free loopback port, with the shared bucket created."""
    server = create_server("127.0.0.1", 0, in_memory=True)
    server.start()
    try:
        # Port 0 lets the kernel pick a free port; the emulator only exposes it through its HTTP server object.
        endpoint = f"http://127.0.0.1:{server._api._httpd.server_address[1]}"
        emulator_client(endpoint).create_bucket(GCS_BUCKET)
        yield endpoint
    finally:
        server.stop()


def emulator_client(endpoint: str) -> storage.Client:
    """A client that reaches the emulator without STORAGE_EMULATOR_HOST, to check what the store did."""
    return storage.Client(
        project=GCS_EMULATOR_PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials from the environment, and no developer's ~/.aws to interfere."""
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def gcs_env(monkeypatch: pytest.MonkeyPatch, gcs_endpoint: str) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)


@pytest.fixture
def versions(serving_env: Path) -> Path:
    """v1.0.0 serves control, v1.1.0 treatment; v1.2.0 is registered but not served."""
    args = ["--users", "200", "--items", "50", "--days", "20", "--events", "3000"]
    call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())
    for extra in (["--promote", "control"], ["--algorithm", "svd", "--promote", "treatment"], ["--algorithm", "svd"]):
        call_command("train", "--lookback-days", "20", *extra, stdout=StringIO(), stderr=StringIO())
    return serving_env


@pytest.fixture
def admin() -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=ADMIN_KEY)
    return client
