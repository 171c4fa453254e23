"""Settings from the environment: required values fail clearly, production settings pass the deploy checklist."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from rideease.env import env_bool, env_int, env_list, env_str
from tests.servers import BASE_DIR

PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "k" * 20 + "production-secret-from-the-environment-0123456789",
    "DJANGO_HTTPS": "true",
    "DJANGO_ALLOWED_HOSTS": "reco.example.com",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "MONGODB_URI"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env={**clean, **env}, capture_output=True, text=True
    )


def test_required_values_raise_improperly_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_REQUIRED", raising=False)
    with pytest.raises(ImproperlyConfigured, match="Set the SOME_REQUIRED environment variable"):
        env_str("SOME_REQUIRED", required=True)


def test_typed_values_are_parsed_and_bad_ones_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "yes")
    monkeypatch.setenv("COUNT", "12")
    monkeypatch.setenv("HOSTS", " a.example.com , ,b.example.com ")
    assert env_bool("FLAG", False) is True
    assert env_int("COUNT", 1, maximum=20) == 12
    assert env_list("HOSTS", []) == ["a.example.com", "b.example.com"]
    monkeypatch.setenv("COUNT", "twelve")
    with pytest.raises(ImproperlyConfigured, match="COUNT must be an integer"):
        env_int("COUNT", 1)
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="FLAG must be a boolean"):
        env_bool("FLAG", False)


def test_production_without_a_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = manage("check", env={"DJANGO_DEBUG": "false", "RIDEEASE_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr
    assert f"it generates {tmp_path / 'secret_key'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_read_the_key_and_the_database_address_that_make_run_keeps(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("a-generated-local-key-" + "x" * 40)
    (tmp_path / "embedded_mongodb_uri").write_text("mongodb://127.0.0.1:1/")
    result = manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.conf import settings; print(settings.MONGODB_URI)",
        env={"RIDEEASE_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "mongodb://127.0.0.1:1/"


def test_production_settings_pass_the_deploy_checklist() -> None:
    env = {**PRODUCTION, "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_HSTS_PRELOAD": "true"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_only_the_documented_hsts_warnings_remain_with_the_defaults() -> None:
    result = manage("check", "--deploy", env=PRODUCTION)
    warnings = sorted(re.findall(r"\((\w+\.[WE]\d+)\)", result.stderr))
    assert warnings == ["security.W005", "security.W021"], result.stderr
