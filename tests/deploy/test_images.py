"""What the images contain: the app and its runtime dependencies only, run by a non-root user, labelled."""

import shutil
from pathlib import Path

import pytest

from tests.deploy.conftest import BuiltImage
from tests.deploy.podman import BASE_IMAGE, Podman
from tests.servers import BASE_DIR

pytestmark = pytest.mark.slow
ROOT_USERS = {"", "0", "root", "0:0", "root:root"}
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "make", "ld")
# Test tools, linters, and the embedded database (GPL-2.0: it must never ship in an image).
NOT_SHIPPED = ("pytest", "pytest_django", "mypy", "ruff", "moto", "playwright", "secantusdb", "SecantusDB")


def in_image(podman: Podman, image: str, script: str) -> tuple[int, str]:
    result = podman.run(
        "run", "--rm", "--network", "none", "--no-healthcheck", "--entrypoint", "sh", image, "-c", script, check=False
    )
    return result.returncode, result.stdout.strip()


@pytest.fixture(scope="module", params=["app", "train"])
def image(request: pytest.FixtureRequest) -> BuiltImage:
    built: BuiltImage = request.getfixturevalue(f"{request.param}_image")
    return built


def test_image_runs_as_a_non_root_user(podman: Podman, image: BuiltImage) -> None:
    assert podman.image_inspect(image.tag)["Config"]["User"] not in ROOT_USERS
    code, uid = in_image(podman, image.tag, "id -u")
    assert code == 0 and uid.isdigit() and int(uid) != 0


def test_image_has_no_compiler(podman: Podman, image: BuiltImage) -> None:
    for compiler in COMPILERS:
        code, found = in_image(podman, image.tag, f"command -v {compiler}")
        assert code != 0, f"{compiler} is in the image at {found}"


def test_image_has_no_test_tools_and_no_embedded_database(podman: Podman, image: BuiltImage) -> None:
    code, installed = in_image(podman, image.tag, "python -m pip list --format=freeze --disable-pip-version-check")
    assert code == 0
    names = {line.split("==")[0].lower().replace("-", "_") for line in installed.splitlines()}
    assert {"django", "gunicorn", "pymongo", "scikit_learn"} <= names
    assert names.isdisjoint(name.lower() for name in NOT_SHIPPED)
    code, _ = in_image(podman, image.tag, "python -c 'import secantusdb'")
    assert code != 0
    code, listing = in_image(podman, image.tag, "ls -A /app")
    assert code == 0
    assert set(listing.split()).isdisjoint({"tests", ".git", ".venv", "model_registry", ".env", "requirements-dev.txt"})


def test_image_is_labelled_with_its_source_revision(podman: Podman, image: BuiltImage) -> None:
    labels = podman.image_inspect(image.tag)["Config"]["Labels"]
    assert labels["org.opencontainers.image.revision"] == image.revision
    assert labels["org.opencontainers.image.title"].startswith("rideease-reco-")


def test_app_image_checks_healthz_and_runs_gunicorn_with_the_project_config(
    podman: Podman, app_image: BuiltImage
) -> None:
    inspected = podman.image_inspect(app_image.tag)
    config = inspected["Config"]
    # podman reports the healthcheck beside the OCI config, Docker inside it.
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck")
    assert healthcheck and "/healthz" in " ".join(healthcheck["Test"])
    assert config["Cmd"] == ["python", "-m", "gunicorn", "--config", "rideease/gunicorn.conf.py"]
    code, owner = in_image(
        podman, app_image.tag, "stat -c %u $PROMETHEUS_MULTIPROC_DIR && touch $PROMETHEUS_MULTIPROC_DIR/w"
    )
    assert code == 0 and owner == "10001", "the metrics directory is the service user's to write"


def test_train_image_runs_manage_py_train_and_publishes_to_artifacts(podman: Podman, train_image: BuiltImage) -> None:
    config = podman.image_inspect(train_image.tag)["Config"]
    assert config["Entrypoint"] == ["/bin/sh", "/app/docker/train-entrypoint.sh"]
    assert "MODEL_REGISTRY_URI=/artifacts" in config["Env"]
    assert "/artifacts" in config["Volumes"]
    result = podman.run("run", "--rm", "--network", "none", train_image.tag, "--help")
    assert "usage: manage.py train" in result.stdout


def test_dockerignore_keeps_local_state_and_secrets_out_of_the_build_context(
    podman: Podman, base_image: str, tmp_path: Path
) -> None:
    context = tmp_path / "context"
    kept = ["manage.py", "rideease/settings.py", ".env.example", "docker/train-entrypoint.sh"]
    ignored = [
        "var/mongodb/collection-0.wt",
        "model_registry/v1.0.0/model.json",
        "model_registry_run/v1.2.0/model.json",
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        ".env.production",
        "rideease/__pycache__/settings.cpython-311.pyc",
        ".pytest_cache/v/cache/lastfailed",
        ".coverage",
        "htmlcov/index.html",
        "secrets/service-account.json",
        "deploy/tls.key",
        "docs/examples/.env",
        "gha-creds-0123456789abcdef.json",
    ]
    for name in kept + ignored:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text("x")
    shutil.copy(BASE_DIR / ".dockerignore", context / ".dockerignore")
    containerfile = tmp_path / "Containerfile"
    containerfile.write_text(f"FROM {BASE_IMAGE}\nCOPY . /context/\n")
    tag = "localhost/rideease-context-test:latest"
    podman.run("build", "--pull=never", "--network", "none", "--file", str(containerfile), "--tag", tag, str(context))
    try:
        result = podman.run("run", "--rm", "--network", "none", tag, "find", "/context", "-type", "f")
    finally:
        podman.run("rmi", "--force", tag, check=False)
    present = {line.removeprefix("/context/") for line in result.stdout.split()}
    assert set(kept) <= present
    assert present.isdisjoint(ignored), present & set(ignored)
