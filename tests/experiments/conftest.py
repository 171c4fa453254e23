"""Fixtures of the experiments tests: a database with demo events and two served versions."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command


@pytest.fixture
def served(serving_env: Path) -> None:
    args = ["--users", "100", "--items", "30", "--days", "20", "--events", "1500"]
    call_command("seed_demo", *args, stdout=StringIO(), stderr=StringIO())
    call_command("train", "--lookback-days", "20", "--promote", "control", stdout=StringIO(), stderr=StringIO())
    call_command(
        "train",
        "--lookback-days",
        "20",
        "--algorithm",
        "svd",
        "--promote",
        "treatment",
        stdout=StringIO(),
        stderr=StringIO(),
    )
