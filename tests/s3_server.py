"""moto's S3 server on loopback, shared by every test that needs object storage (see `s3_endpoint` in conftest)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

S3_BUCKET = "rideease-artifacts"
FAKE_AWS_SECRET = "fake-secret-access-key-for-tests"
# The credentials as environment variables, for a process (or container) that talks to the server.
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": FAKE_AWS_SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
}


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the test server, with the fake credentials."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=FAKE_AWS_ENV["AWS_DEFAULT_REGION"],
        aws_access_key_id=FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=FAKE_AWS_SECRET,
    )


@contextmanager
def s3_server() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port with the shared bucket; yield its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        s3_client(endpoint).create_bucket(Bucket=S3_BUCKET)
        yield endpoint
    finally:
        server.stop()
