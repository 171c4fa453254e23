"""The retraining workflow's train step, run as GitHub would run it, with `docker` played by podman.

Its script is read from .github/workflows/model-retraining.yml and given the environment the workflow gives it, with
an S3 registry on loopback (moto's server) standing in for the production store.
"""

import json
import subprocess
from pathlib import Path
from typing import Any

import pymongo
import pytest
import yaml

from tests.deploy.conftest import BuiltImage, ServedDatabase
from tests.deploy.podman import IMAGE_UID, Podman
from tests.s3_server import FAKE_AWS_ENV, S3_BUCKET, s3_client
from tests.servers import BASE_DIR

pytestmark = pytest.mark.slow
# `docker run` on a GitHub runner reaches the internet; here the test's servers listen on the host's loopback.
DOCKER_SHIM = """#!/bin/sh
if [ "$1" = run ]; then shift; exec podman run --network host "$@"; fi
exec podman "$@"
"""
SUDO_SHIM = '#!/bin/sh\nexec "$@"\n'


def train_step() -> dict[str, Any]:
    document = yaml.safe_load((BASE_DIR / ".github" / "workflows" / "model-retraining.yml").read_text())
    step: dict[str, Any] = next(step for step in document["jobs"]["retrain"]["steps"] if step.get("id") == "train")
    return step


def run_train_step(
    podman: Podman, image: BuiltImage, workspace: Path, variables: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], str]:
    """Run the step's script in `workspace` as the runner does (bash -e); return it, its outputs and its summary."""
    shims = workspace.parent / "bin"
    shims.mkdir(exist_ok=True)
    for name, text in (("docker", DOCKER_SHIM), ("sudo", SUDO_SHIM)):
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    workspace.mkdir()
    runner_temp = workspace.parent / "runner-temp"
    runner_temp.mkdir(exist_ok=True)
    output, summary = runner_temp / "output", runner_temp / "summary"
    base = podman.env()
    env = {
        **{name: value for name, value in base.items() if not name.startswith(("MONGODB_", "MODEL_", "AWS_"))},
        "PATH": f"{shims}:{base['PATH']}",
        "IMAGE": image.tag,
        "IMAGE_UID": str(IMAGE_UID),
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PIPELINE_GIT_SHA": image.revision,
        "CONTAINER_IMAGE_DIGEST": image.image_id,
        **variables,
    }
    result = subprocess.run(
        ["bash", "-e", "-c", train_step()["run"]], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines()) if output.exists() else {}
    return result, outputs, summary.read_text() if summary.exists() else ""


def test_the_step_is_given_the_secrets_the_commit_and_the_image_digest() -> None:
    env = train_step()["env"]
    for name in ("MONGODB_URI", "MONGODB_DB", "MODEL_REGISTRY_URI"):
        assert env[name] == f"${{{{ secrets.{name} }}}}"
    assert env["CONTAINER_IMAGE_DIGEST"] == "${{ steps.image.outputs.digest }}"
    assert env["PIPELINE_GIT_SHA"] == "${{ github.sha }}"


def test_retraining_step_publishes_to_the_registry_and_keeps_a_copy_for_the_build_artifact(
    podman: Podman, train_image: BuiltImage, served_database: ServedDatabase, s3_endpoint: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "workspace"
    result, outputs, summary = run_train_step(
        podman,
        train_image,
        workspace,
        {
            "MONGODB_URI": served_database.uri,
            "MONGODB_DB": served_database.name,
            "MODEL_REGISTRY_URI": f"s3://{S3_BUCKET}/rec-engine",
            "MODEL_REGISTRY_S3_ENDPOINT_URL": s3_endpoint,
            "TRAINING_ALGORITHM": "popularity",
            **FAKE_AWS_ENV,
        },
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = outputs["version"]
    # What the upload step sends: the version's files, copied from the registry, and the trainer's report.
    copied = workspace / "model_registry_run" / version
    assert sorted(path.name for path in copied.iterdir()) == ["arrays.npz", "metadata.json", "model.json"]
    report = json.loads((workspace / "training-report.json").read_text())
    assert report["version"] == version and report["algorithm"] == "popularity"
    assert f"Published {version}" in summary

    s3 = s3_client(s3_endpoint)
    stored = s3.get_object(Bucket=S3_BUCKET, Key=f"rec-engine/{version}/metadata.json")["Body"].read()
    assert stored == (copied / "metadata.json").read_bytes()
    metadata = json.loads(stored)
    assert metadata["pipelineGitSha"] == train_image.revision
    assert metadata["containerImageDigest"] == train_image.image_id
    with pymongo.MongoClient(served_database.uri, serverSelectionTimeoutMS=5000) as client:
        record = client[served_database.name]["models"].find_one({"version": version})
    assert record is not None and record["artifactUri"] == f"s3://{S3_BUCKET}/rec-engine/{version}"


def test_retraining_step_fails_loudly_when_training_fails(
    podman: Podman, train_image: BuiltImage, served_database: ServedDatabase, tmp_path: Path
) -> None:
    empty = f"{served_database.name}_nothing"
    try:
        result, outputs, _ = run_train_step(
            podman,
            train_image,
            tmp_path / "workspace",
            {"MONGODB_URI": served_database.uri, "MONGODB_DB": empty, "MODEL_REGISTRY_URI": "/artifacts"},
        )
    finally:
        with pymongo.MongoClient(served_database.uri, serverSelectionTimeoutMS=5000) as client:
            client.drop_database(empty)
    assert result.returncode == 1
    assert "::error title=Training failed::manage.py train exited with code 1" in result.stdout
    assert "training failed (no_events)" in result.stderr
    assert "version" not in outputs
