"""The layout holds: the core runs without Django, and an import that runs back up the layers fails the lint."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("rideease", "experiments", "recommendations", "tracing", "registry", "monitoring", "common", "core")
CORE_MODULES = ("core.statistics", "core.artifacts", "core.assignment", "core.recommender.algorithms")


def _without_settings() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}


def test_the_core_imports_without_django_and_passes_its_tests_without_settings() -> None:
    probe = (
        f"import sys, {', '.join(CORE_MODULES)}\n"
        "print(sorted({name.split('.')[0] for name in sys.modules} & {'django', 'rest_framework', 'pymongo'}))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], env=_without_settings(), cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert imported.stdout.strip() == "[]"
    # Without pytest-django and without the suite's conftest and database plugin: only the core's own tests.
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:django", "-p", "no:cacheprovider", "-o", "addopts="]
    command += ["-W", "ignore::pytest.PytestConfigWarning", "--confcutdir", "tests/core", "tests/core"]
    run = subprocess.run(command, env=_without_settings(), cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout.splitlines()[-1]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(lint), "--no-cache", "--no-logo"], cwd=tree, env=env, capture_output=True, text=True)


def test_an_import_that_runs_back_up_the_layers_fails_the_lint(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    assert _lint(tmp_path).returncode == 0

    with (tmp_path / "registry" / "selectors.py").open("a") as module:
        module.write("\nfrom experiments import selectors as _experiments  # noqa: E402\n")
    broken = _lint(tmp_path)
    assert broken.returncode != 0
    assert "Each app imports only the apps below it BROKEN" in broken.stdout
    assert "registry.selectors -> experiments.selectors" in broken.stdout
