"""Both images run: the app becomes healthy by its own HEALTHCHECK and serves; the trainer publishes and registers."""

import json
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from rideease.embedded_db import free_port
from tests.deploy.conftest import BuiltImage, ServedDatabase
from tests.deploy.podman import IMAGE_UID, Podman
from tests.servers import http_get

pytestmark = pytest.mark.slow
HEALTHY_WITHIN = 120.0
SECRET_KEY = "container-test-secret-key-" + "0123456789" * 5


def health_status(podman: Podman, name: str) -> str:
    state = podman.container_inspect(name)["State"]
    health = state.get("Health") or state.get("Healthcheck") or {}
    return str(health.get("Status", ""))


def wait_until_healthy(podman: Podman, name: str) -> None:
    """Run the image's own HEALTHCHECK until it passes (there is no systemd timer here to run it)."""
    deadline = time.monotonic() + HEALTHY_WITHIN
    while time.monotonic() < deadline:
        if not podman.container_inspect(name)["State"]["Running"]:
            logs = podman.run("logs", name, check=False).stderr
            raise AssertionError(f"the app container stopped:\n{logs[-4000:]}")
        if podman.run("healthcheck", "run", name, check=False).returncode == 0:
            return
        time.sleep(1)
    logs = podman.run("logs", name, check=False)
    raise AssertionError(f"not healthy within {HEALTHY_WITHIN}s:\n{logs.stdout[-2000:]}\n{logs.stderr[-4000:]}")


@pytest.fixture(scope="module")
def app_container(podman: Podman, app_image: BuiltImage, served_database: ServedDatabase) -> Iterator[tuple[str, str]]:
    """The app image on a free port of the host network, against the served database, healthy by its HEALTHCHECK.

    Yields the container's name and base URL.
    """
    name = f"rideease-app-test-{secrets.token_hex(4)}"
    port = free_port()
    registry = served_database.registry
    podman.run(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        # The versions were published to this folder: the container reads them at the same path.
        "--volume",
        f"{registry}:{registry}:ro",
        "--env",
        f"MONGODB_URI={served_database.uri}",
        "--env",
        f"MONGODB_DB={served_database.name}",
        "--env",
        f"DJANGO_SECRET_KEY={SECRET_KEY}",
        "--env",
        "DJANGO_HTTPS=false",
        "--env",
        f"PORT={port}",
        "--env",
        "GUNICORN_WORKERS=2",
        "--env",
        "GUNICORN_THREADS=2",
        app_image.tag,
    )
    try:
        wait_until_healthy(podman, name)
        yield name, f"http://127.0.0.1:{port}"
    finally:
        podman.remove_container(name)


def test_app_container_becomes_healthy_and_serves_recommendations(
    podman: Podman, app_container: tuple[str, str]
) -> None:
    name, base = app_container
    assert health_status(podman, name) == "healthy"

    status, body = http_get(f"{base}/readyz")
    assert status == 200, body
    status, body = http_get(f"{base}/recommendations?userId=rider-000042&limit=3")
    assert status == 200, body
    answer = json.loads(body)
    assert answer["userId"] == "rider-000042"
    assert answer["modelVersion"] in {"v1.0.0", "v1.1.0"}
    assert len(answer["recommendations"]) == 3
    assert all(item["itemId"] and isinstance(item["score"], float) for item in answer["recommendations"])

    # Workers and threads come from the environment; their metrics merge in the prepared multiprocess directory.
    logs = podman.run("logs", name).stdout + podman.run("logs", name).stderr
    assert len(set(re.findall(r"Booting worker with pid: (\d+)", logs))) == 2
    status, body = http_get(f"{base}/metrics")
    assert status == 200 and b"django_http_requests_total_by_method_total" in body
    files = podman.run("exec", name, "sh", "-c", "ls /app/var/prometheus").stdout.split()
    assert any(file.endswith(".db") for file in files)


def test_app_container_serves_the_admin_static_files_collected_at_build_time(app_container: tuple[str, str]) -> None:
    _, base = app_container
    status, page = http_get(f"{base}/admin/ui/login/")
    assert status == 200
    stylesheet = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert stylesheet, "the login page links the hashed stylesheet from the build's manifest"
    status, css = http_get(f"{base}{stylesheet.group(1).decode()}")
    assert status == 200 and b"body" in css


def run_trainer(
    podman: Podman, image: BuiltImage, database: ServedDatabase, artifacts: Path, db_name: str, *args: str
) -> tuple[int, str, str]:
    result = podman.run(
        "run",
        "--rm",
        "--network",
        "host",
        "--volume",
        f"{artifacts}:/artifacts",
        "--env",
        f"MONGODB_URI={database.uri}",
        "--env",
        f"MONGODB_DB={db_name}",
        "--env",
        "MODEL_REGISTRY_URI=/artifacts",
        "--env",
        f"CONTAINER_IMAGE_DIGEST={image.image_id}",
        image.tag,
        *args,
        check=False,
        timeout=300,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """A folder mounted as /artifacts, writable by the image's non-root user."""
    folder = tmp_path / "model_registry_run"
    folder.mkdir()
    os.chown(folder, IMAGE_UID, IMAGE_UID)
    return folder


def test_trainer_container_publishes_a_new_version_into_the_mount_and_registers_it(
    podman: Podman, train_image: BuiltImage, served_database: ServedDatabase, artifacts: Path
) -> None:
    code, stdout, stderr = run_trainer(
        podman, train_image, served_database, artifacts, served_database.name, "--lookback-days", "20", "--json"
    )
    assert code == 0, stderr[-4000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    version = report["version"]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", version) and version not in {"v1.0.0", "v1.1.0"}

    folder = artifacts / version
    assert sorted(path.name for path in folder.iterdir()) == ["arrays.npz", "metadata.json", "model.json"]
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == version
    # Provenance: the commit the image was built from (its default PIPELINE_GIT_SHA) and the image that ran.
    assert metadata["pipelineGitSha"] == train_image.revision
    assert metadata["containerImageDigest"] == train_image.image_id

    with pymongo.MongoClient(served_database.uri, serverSelectionTimeoutMS=5000) as client:
        record = client[served_database.name]["models"].find_one({"version": version})
    assert record is not None, "the new version is registered"
    assert record["status"] == "ready"
    assert record["artifactUri"] == f"file:///artifacts/{version}"


def test_trainer_container_trains_with_the_spark_engine(
    podman: Podman, train_image: BuiltImage, served_database: ServedDatabase, artifacts: Path
) -> None:
    args = ("--engine", "spark", "--lookback-days", "20", "--trials", "1", "--json")
    code, stdout, stderr = run_trainer(podman, train_image, served_database, artifacts, served_database.name, *args)
    assert code == 0, stderr[-4000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["algorithm"] == "als"
    assert report["metrics"]["engine"] == {"engine": "spark", "sparkVersion": "4.3.0", "master": "local[2]"}
    assert report["provenance"]["sources"]["trainingEngine"] == "spark 4.3.0 (master local[2])"
    assert sorted(path.name for path in (artifacts / report["version"]).iterdir()) == [
        "arrays.npz",
        "metadata.json",
        "model.json",
    ]


def test_trainer_container_passes_arguments_through_and_fails_loudly(
    podman: Podman, train_image: BuiltImage, served_database: ServedDatabase, artifacts: Path
) -> None:
    empty = f"{served_database.name}_empty"
    try:
        no_events = run_trainer(podman, train_image, served_database, artifacts, empty, "--algorithm", "svd")
        bad_argument = run_trainer(podman, train_image, served_database, artifacts, empty, "--algorithm", "nope")
    finally:
        with pymongo.MongoClient(served_database.uri, serverSelectionTimeoutMS=5000) as client:
            client.drop_database(empty)
    code, _, stderr = no_events
    assert code == 1 and "training failed (no_events)" in stderr
    assert list(artifacts.iterdir()) == []
    code, _, stderr = bad_argument
    assert code != 0 and "invalid choice: 'nope'" in stderr
