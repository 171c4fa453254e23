"""A real Prometheus (Debian's package) on loopback for tests, its HTTP API, and the monitoring files' contents."""

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from rideease.embedded_db import free_port
from tests.servers import BASE_DIR, stop_process

MONITORING_DIR = BASE_DIR / "monitoring"
ALERTS_FILE = MONITORING_DIR / "alerts-policy.yaml"
DASHBOARD_FILE = MONITORING_DIR / "grafana-dashboard.json"
RUNBOOK_FILE = MONITORING_DIR / "RUNBOOK.md"
JOB = "rideease"  # the scrape job name the alert rules select
T = TypeVar("T")


def system_tool(name: str, package: str) -> str:
    """The path of a command the tests need; fails the test (never skips it) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: `apt-get install -y {package}` (make test installs it)")
    return path


def alert_rules() -> dict[str, dict[str, Any]]:
    """Every alerting rule in alerts-policy.yaml, by alert name."""
    policy = yaml.safe_load(ALERTS_FILE.read_text())
    return {rule["alert"]: rule for group in policy["groups"] for rule in group["rules"] if "alert" in rule}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel, including those nested in rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def panel_queries() -> list[tuple[str, str, str]]:
    """(panel title, refId, PromQL) for every query of every panel."""
    return [
        (panel["title"], target["refId"], target["expr"])
        for panel in dashboard_panels()
        for target in panel.get("targets", [])
    ]


def grafana_substitute(expr: str, *, job: str = JOB, rate_interval: str = "5m", time_range: str = "5m") -> str:
    """A panel query as Grafana sends it: the dashboard's $job variable, $__rate_interval and $__range filled in."""
    resolved = expr.replace("$__rate_interval", rate_interval).replace("$__range", time_range)
    resolved = resolved.replace("${job}", job).replace("$job", job)
    assert "$" not in resolved, f"a variable is left in {resolved}"
    return resolved


def compact(expr: str) -> str:
    """PromQL without whitespace, to compare expressions written over several lines."""
    return re.sub(r"\s+", "", expr)


def wait_until(check: Callable[[], T | None], *, timeout: float, what: str, interval: float = 0.25) -> T:
    """Poll until `check` returns something other than None (or False), up to a deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last is not None and last is not False:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class PrometheusApi:
    """The HTTP API of one Prometheus server."""

    def __init__(self, base: str) -> None:
        self.base = base

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET an API path; returns the JSON body whatever the HTTP status (errors carry `status: error`)."""
        url = f"{self.base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query", query=expr)

    def vector(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """An instant query's result as {sorted label pairs: value}; fails on a query error."""
        body = self.query(expr)
        assert body.get("status") == "success", f"{expr}: {body}"
        return {tuple(sorted(item["metric"].items())): float(item["value"][1]) for item in body["data"]["result"]}

    def scalar(self, expr: str) -> float | None:
        """The one value of a query whose result has a single series, or None while it has none."""
        values = list(self.vector(expr).values())
        assert len(values) <= 1, f"{expr} returned {len(values)} series"
        return values[0] if values else None


def prometheus_config(*, target: str, rule_files: list[Path], scrape_interval: str = "1s") -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [target]}]}],
    }


@contextmanager
def prometheus_server(*, target: str, rule_files: list[Path], workdir: Path) -> Iterator[PrometheusApi]:
    """Run Prometheus on a free loopback port, scraping `target` (host:port) as job `rideease`, until the block ends."""
    binary = system_tool("prometheus", "prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(target=target, rule_files=rule_files)))
    port = free_port()
    log = (workdir / "prometheus.log").open("ab")  # kept for reading when a test fails
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    api = PrometheusApi(f"http://127.0.0.1:{port}")
    try:
        wait_until(lambda: _ready(api, process), timeout=30, what="Prometheus to be ready")
        yield api
    finally:
        stop_process(process, timeout=20)
        shutil.rmtree(workdir / "data", ignore_errors=True)


def _ready(api: PrometheusApi, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"Prometheus exited with {process.returncode}; see its log")
    try:
        with urllib.request.urlopen(f"{api.base}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
