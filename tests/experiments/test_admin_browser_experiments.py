"""An experiment from draft to shipped in the web admin, in a real browser (Debian's Chromium, driven by Playwright)
against the app under gunicorn: create, start, read the summary's chart, stop with "shipped"."""

import json
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, sync_playwright
from pymongo import MongoClient

from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import BASE_DIR, CHROMIUM, CHROMIUM_ARGS, app_env, gunicorn_app, prepare_served_database

pytestmark = pytest.mark.slow
PASSWORD = "browser-test-password-0123"
ADMIN_KEY = "browser-admin-key-0123456789"
DB = "browser"
KEY = "svd-vs-knn"
DAYS = 4


def exposures_and_bookings(started: datetime, days: int, users: int = 40) -> list[dict[str, Any]]:
    """`raw_events` documents: each day of the phase, `users` new users per variant see two items an hour into the
    day, tagged with the experiment and phase 1; some book a shown item a few minutes later (more in treatment)."""
    documents: list[dict[str, Any]] = []
    for day in range(days):
        at = started + timedelta(days=day, hours=1)
        for variant, version, rate in (("control", "v1.0.0", 0.2), ("treatment", "v1.1.0", 0.35)):
            for n in range(users):
                user = f"{variant}-{day}-{n}"
                payload = {
                    "requestId": f"r-{user}",
                    "variant": variant,
                    "modelVersion": version,
                    "items": ["dest-1", "dest-2"],
                    "experiment": KEY,
                    "phase": 1,
                }
                documents.append(
                    {
                        "type": "recommend",
                        "userId": user,
                        "itemId": None,
                        "ts": at,
                        "payload": payload,
                        "receivedAt": at,
                    }
                )
                if n < rate * users:
                    booked = at + timedelta(minutes=4)
                    documents.append(
                        {
                            "type": "book",
                            "userId": user,
                            "itemId": "dest-1",
                            "ts": booked,
                            "payload": {},
                            "receivedAt": booked,
                        }
                    )
    return documents


def confirm(page: Page, reason: str) -> str:
    """Fill the confirmation's reason, confirm, and return the message shown after the redirect."""
    page.wait_for_selector("#confirm-action")
    page.fill("#id_reason", reason)
    page.click("#confirm-action")
    page.wait_for_selector("ul.messagelist li")
    return page.locator("ul.messagelist").inner_text()


def serving(base: str) -> dict[str, Any]:
    request = urllib.request.Request(f"{base}/admin/models", headers={"X-API-Key": ADMIN_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = json.loads(response.read())
    return body["serving"]


def test_a_staff_user_creates_starts_reads_and_ships_an_experiment_in_the_admin(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db=DB, var_dir=tmp_path, events=1500)
        env = {**app_env(mongodb_uri=server.uri, mongodb_db=DB, var_dir=tmp_path)}
        env.update({"ADMIN_USERNAME": "carol", "ADMIN_PASSWORD": PASSWORD})
        subprocess.run(
            [sys.executable, "manage.py", "bootstrap", "--no-demo"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
        )
        database = MongoClient(server.uri, tz_aware=True)[DB]
        with (
            gunicorn_app(
                mongodb_uri=server.uri, mongodb_db=DB, var_dir=tmp_path, extra_env={"MODEL_ADMIN_API_KEY": ADMIN_KEY}
            ) as base,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/admin/ui/login/")
            page.fill("#id_username", "carol")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")

            # A newcomer finds experiments on the admin's home page, and adds one there.
            page.click("#content-main a[href='/admin/ui/experiments/experiment/']")
            page.click(".object-tools a.addlink")
            page.fill("#id_key", KEY)
            page.fill("#id_name", "SVD against item-kNN")
            page.fill("#id_hypothesis", "SVD finds rides people book")
            page.fill("#id_control_version", "v1.0.0")
            page.fill("#id_treatment_version", "v1.1.0")
            page.fill("#id_ramp", "0.2 0 0\n0.5 24 1000")  # a two-step ramp, one step per line
            page.click("input[name=_save]")
            page.wait_for_selector("ul.messagelist li")
            assert "was added successfully" in page.locator("ul.messagelist").inner_text()
            page.locator("#result_list tr", has_text=KEY).locator("a", has_text="summary").click()
            assert "Not started yet" in page.locator("#not-started").inner_text()

            page.click("#start-link")
            assert "tagging every exposure with svd-vs-knn, phase 1" in page.locator("#question").inner_text()
            assert "started: phase 1 serves control v1.0.0 and treatment v1.1.0" in confirm(page, "weekly test")
            assert serving(base)["treatmentShare"] == 0.2  # the ramp's first step
            assert "serving now" in page.locator("#ramp tr.current-step").inner_text()

            # Four days of tagged exposures and bookings, in a phase moved back to begin three and a half days ago.
            started = datetime.now(UTC) - timedelta(days=DAYS - 1, hours=12)
            database.experiments.update_one(
                {"key": KEY}, {"$set": {"startedAt": started, "phases.0.startedAt": started.isoformat()}}
            )
            database.raw_events.insert_many(exposures_and_bookings(started, DAYS))
            page.reload()
            chart = page.locator("svg#cumulative-chart")
            band = chart.locator("polygon.band")
            assert band.count() == 1 and len((band.get_attribute("points") or "").split()) == 2 * DAYS
            assert len((chart.locator("polyline.difference").get_attribute("points") or "").split()) == DAYS
            assert [
                int(d or 0)
                for d in chart.locator("circle.day-point").evaluate_all("nodes => nodes.map(n => n.dataset.day)")
            ] == list(range(1, DAYS + 1))
            assert chart.locator("text.day-label").all_text_contents() == [f"day {d}" for d in range(1, DAYS + 1)]
            assert chart.locator("#zero-line").count() == 1
            assert page.locator("#decision").inner_text() in ("ship", "rollback", "keep-running")
            page.screenshot(path=str(tmp_path / "summary.png"), full_page=True)

            page.click("#stop-link")
            page.select_option("#id_result", "shipped")
            assert "stopped: shipped" in confirm(page, "treatment books more")
            assert page.locator("#result").inner_text() == "shipped"
            browser.close()

            state = serving(base)
            assert (state["control"], state["treatmentShare"], state["updatedBy"]) == ("v1.1.0", 0.0, "carol")
            stored = database.model_serving_state.find_one()
            assert stored is not None and stored["runningExperiment"] is None
            record = database.experiments.find_one({"key": KEY})
            assert record is not None
            assert (record["owner"], record["status"], record["result"], record["stoppedBy"]) == (
                "carol",
                "stopped",
                "shipped",
                "carol",
            )
    finally:
        embedded_db_stop(server)
    assert (tmp_path / "summary.png").stat().st_size > 0
