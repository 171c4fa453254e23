"""The Dockerfiles and the GitHub workflows pass their linters, and the workflows do what the project relies on."""

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import BASE_DIR

DOCKERFILES = [BASE_DIR / "docker" / "Dockerfile.app", BASE_DIR / "docker" / "Dockerfile.train"]
WORKFLOWS = [BASE_DIR / ".github" / "workflows" / "ci.yml", BASE_DIR / ".github" / "workflows" / "model-retraining.yml"]


def tool(name: str) -> str:
    """A linter installed into the project's virtualenv by `make install-dev`; missing, the test fails."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed: `make install-dev` installs it"
    return str(path)


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=BASE_DIR, timeout=120)


def workflow(name: str) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load((BASE_DIR / ".github" / "workflows" / name).read_text())
    return document


def steps_text(document: dict[Any, Any]) -> str:
    return "\n".join(str(step) for job in document["jobs"].values() for step in job["steps"])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_dockerfile_passes_hadolint_at_warning_level(dockerfile: Path) -> None:
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint() -> None:
    result = run(tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_match_the_github_workflow_schema() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_make_test_on_pushes_and_pull_requests() -> None:
    document = workflow("ci.yml")
    # YAML reads the key `on` as True.
    assert {"push", "pull_request"} <= set(document[True])
    assert "make test" in steps_text(document)


def test_retraining_runs_daily_at_seven_and_by_hand_and_publishes_the_new_version() -> None:
    document = workflow("model-retraining.yml")
    triggers = document[True]
    assert triggers["schedule"] == [{"cron": "0 7 * * *"}]
    assert "workflow_dispatch" in triggers
    text = steps_text(document)
    assert "docker/Dockerfile.train" in text
    for secret in ("MONGODB_URI", "MONGODB_DB", "MODEL_REGISTRY_URI", "CONTAINER_IMAGE_DIGEST"):
        assert f"secrets.{secret}" in text, secret
    assert "PIPELINE_GIT_SHA" in text and "github.sha" in text
    assert "model_registry_run" in text and ":/artifacts" in text
    assert "actions/upload-artifact" in text


def test_deploy_guide_covers_every_environment_variable() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), flags=re.MULTILINE))
    guide = (BASE_DIR / "docs" / "DEPLOY.md").read_text()
    assert {name for name in documented if f"`{name}`" not in guide} == set()
