"""The API as served by gunicorn: every example of docs/API.md answers as documented, and fuzzing finds no 5xx."""

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import BASE_DIR, app_env, gunicorn_app, prepare_served_database

pytestmark = pytest.mark.slow
KEY = "served-api-admin-key-0123456789"
API_MD = BASE_DIR / "docs" / "API.md"
SCHEMA = BASE_DIR / "docs" / "openapi.yaml"
# A shell command block, then optionally "Answer (NNN):" and the documented JSON.
EXAMPLE = re.compile(
    r"```sh\n(?P<command>.*?)```(?:\s*Answer \((?P<status>\d{3})\):\s*```json\n(?P<answer>.*?)```)?", re.S
)
# Prints the status on a last line of its own after each answer, whatever the documented flags.
WRAPPER = "curl() { command curl -w '\\n%{http_code}' \"$@\"; }\n"


@dataclass(frozen=True)
class Example:
    command: str
    status: int | None
    answer: dict[str, object] | None


def examples() -> list[Example]:
    found = []
    for match in EXAMPLE.finditer(API_MD.read_text()):
        answer = json.loads(match["answer"]) if match["answer"] else None
        found.append(Example(match["command"].strip(), int(match["status"]) if match["status"] else None, answer))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under gunicorn over a seeded database: two served versions, a spare one, static files collected."""
    var = tmp_path_factory.mktemp("served-api")
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db="api", var_dir=var, spare_versions=1)
        env = app_env(mongodb_uri=server.uri, mongodb_db="api", var_dir=var)
        collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"]
        subprocess.run(collect, cwd=BASE_DIR, env=env, check=True, capture_output=True)
        extra = {"MODEL_ADMIN_API_KEY": KEY}
        with gunicorn_app(mongodb_uri=server.uri, mongodb_db="api", var_dir=var, extra_env=extra) as base:
            yield base
    finally:
        embedded_db_stop(server)


def run_example(example: Example, base: str) -> tuple[int, str, int]:
    """Run the documented command as written; return curl's exit code, the body and the HTTP status."""
    env = {"PATH": "/usr/bin:/bin", "RIDEEASE_URL": base, "RIDEEASE_ADMIN_KEY": KEY}
    result = subprocess.run(["bash", "-c", WRAPPER + example.command], env=env, capture_output=True, text=True)
    body, _, status = result.stdout.rstrip("\n").rpartition("\n")
    return result.returncode, body, int(status) if status.isdigit() else 0


def test_every_example_in_the_api_docs_answers_as_documented(served: str) -> None:
    found = examples()
    schema_paths = yaml.safe_load(SCHEMA.read_text())["paths"]
    patterns = {path: "URL" + re.sub(r"\{\w+\}", '[^/?"]+', path) + '[?"]' for path in schema_paths}
    covered = {path for path, pattern in patterns.items() if any(re.search(pattern, ex.command) for ex in found)}
    assert covered == set(schema_paths), f"no example for {set(schema_paths) - covered}"
    for example in found:
        deadline = time.monotonic() + 3  # a trace is readable within a second of its answer
        code, body, status = run_example(example, served)
        while example.status and status != example.status and time.monotonic() < deadline:
            time.sleep(0.2)
            code, body, status = run_example(example, served)
        assert code == 0, example.command
        if example.answer is None:
            assert body.strip(), example.command
            continue
        assert status == example.status, f"{example.command}\n{body}"
        assert set(json.loads(body)) == set(example.answer), example.command


CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.parametrize("with_key", [False, True], ids=["anonymous", "admin-key"])
def test_fuzzing_every_endpoint_finds_no_server_error_and_no_answer_off_the_schema(
    served: str, with_key: bool, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        str(SCHEMA),
        "--url",
        served,
        "--checks",
        f"{CHECKS},response_headers_conformance",
        "--max-examples",
        "25",
        "--seed",
        "20261126",
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        *(["--header", f"X-API-Key: {KEY}"] if with_key else []),
    ]
    # Run from a scratch folder: schemathesis writes its state files where it runs.
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"Tested: 1\d", result.stdout), "every operation was tested"
