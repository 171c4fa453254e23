"""Fixtures of the container tests: podman, the base image, both project images, and a database with served models."""

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymongo
import pytest

from tests.deploy.podman import Podman, base_image_ensure, image_build, source_revision
from tests.servers import BASE_DIR, prepare_served_database

APP_TAG = "localhost/rideease-reco-app:deploy-test"
TRAIN_TAG = "localhost/rideease-reco-train:deploy-test"


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    image_id: str
    revision: str


@dataclass(frozen=True)
class ServedDatabase:
    """A database on the tests' MongoDB server, seeded, with control and treatment versions trained and served."""

    uri: str
    name: str
    registry: Path


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    return Podman.create(tmp_path_factory.mktemp("containers-conf"))


@pytest.fixture(scope="session")
def base_image(podman: Podman) -> str:
    return base_image_ensure(podman)


@pytest.fixture(scope="session")
def revision() -> str:
    return source_revision()


@pytest.fixture(scope="session")
def app_image(podman: Podman, base_image: str, revision: str) -> BuiltImage:
    image_id = image_build(podman, dockerfile=BASE_DIR / "docker" / "Dockerfile.app", tag=APP_TAG, revision=revision)
    return BuiltImage(APP_TAG, image_id, revision)


@pytest.fixture(scope="session")
def train_image(podman: Podman, base_image: str, revision: str) -> BuiltImage:
    image_id = image_build(
        podman, dockerfile=BASE_DIR / "docker" / "Dockerfile.train", tag=TRAIN_TAG, revision=revision
    )
    return BuiltImage(TRAIN_TAG, image_id, revision)


@pytest.fixture(scope="session")
def served_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDatabase]:
    """Seeded and trained as `make run` would, on the tests' throwaway server; dropped afterwards."""
    uri = os.environ["MONGODB_URI"]
    name = f"deploy_{secrets.token_hex(4)}"
    var_dir = tmp_path_factory.mktemp("served")
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        prepare_served_database(mongodb_uri=uri, mongodb_db=name, var_dir=var_dir)
        yield ServedDatabase(uri=uri, name=name, registry=var_dir / "registry")
    finally:
        client.drop_database(name)
        client.close()
