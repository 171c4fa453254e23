"""The alert rules pass promtool's checks and unit tests, and every alert is tested firing and staying quiet."""

import re
import subprocess
from pathlib import Path

import yaml

from tests.monitoring.prometheus_server import ALERTS_FILE, alert_rules, system_tool
from tests.servers import BASE_DIR

RULE_TESTS = Path(__file__).with_name("alerts_test.yaml")
RUNBOOK_URL = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/blob/main/monitoring/RUNBOOK\.md#[a-z0-9-]+$")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [system_tool("promtool", "prometheus"), *args], cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )


def test_promtool_accepts_every_rule() -> None:
    result = promtool("check", "rules", str(ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_staying_quiet() -> None:
    checks = [check for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for check in test["alert_rule_test"]]
    for name in alert_rules():
        expectations = [check["exp_alerts"] for check in checks if check["alertname"] == name]
        assert any(expectations), f"{name}: no test where it fires"
        assert any(not expected for expected in expectations), f"{name}: no test where it stays quiet"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_link() -> None:
    rules = alert_rules()
    assert set(rules) == {
        "RideEaseServiceDown",
        "RideEaseServiceRestarting",
        "RideEaseNoPredictionsServed",
        "RideEasePredictionLatencyHigh",
        "RideEasePredictionErrorRatioHigh",
        "RideEaseTrafficSplitOff",
        "RideEaseTraceSpoolGrowing",
        "RideEaseRetrainingStale",
        "RideEaseExperimentRolledBack",
        "RideEaseExperimentLooksFailing",
        "RideEaseExperimentLooksStale",
        "RideEaseExperimentGuardrailFailing",
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        assert RUNBOOK_URL.match(annotations["runbook_url"]), f"{name}: {annotations['runbook_url']}"


def test_the_rules_select_the_documented_scrape_job() -> None:
    for name, rule in alert_rules().items():
        selectors = re.findall(r"\b(?:rideease_\w+|up)\{([^}]*)\}", rule["expr"])
        assert selectors, name
        assert all('job="rideease"' in selector for selector in selectors), f"{name}: {rule['expr']}"
