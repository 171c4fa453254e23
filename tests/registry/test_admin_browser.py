"""The web admin in a real browser (Debian's Chromium, driven by Playwright) against the app under gunicorn."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from core.assignment import variant_assign
from rideease.embedded_db import embedded_db_start, embedded_db_stop, free_port
from tests.servers import BASE_DIR, CHROMIUM, CHROMIUM_ARGS, app_env, gunicorn_app, http_get, prepare_served_database

pytestmark = pytest.mark.slow
PASSWORD = "browser-test-password-0123"
TREATED = next(
    f"rider-{n:06d}" for n in range(100) if variant_assign(f"rider-{n:06d}", treatment_share=0.5) == "treatment"
)


def test_a_staff_user_promotes_a_version_to_treatment_in_the_admin(tmp_path: Path) -> None:
    server = embedded_db_start(port=free_port(), storage=":memory:")
    try:
        prepare_served_database(mongodb_uri=server.uri, mongodb_db="browser", var_dir=tmp_path, spare_versions=1)
        env = {**app_env(mongodb_uri=server.uri, mongodb_db="browser", var_dir=tmp_path)}
        env.update({"ADMIN_USERNAME": "carol", "ADMIN_PASSWORD": PASSWORD})
        subprocess.run(
            [sys.executable, "manage.py", "bootstrap", "--no-demo"],
            cwd=BASE_DIR,
            env=env,
            check=True,
            capture_output=True,
        )
        with (
            gunicorn_app(mongodb_uri=server.uri, mongodb_db="browser", var_dir=tmp_path) as base,
            sync_playwright() as p,
        ):
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"{base}/admin/ui/login/")
            page.fill("#id_username", "carol")
            page.fill("#id_password", PASSWORD)
            page.click("input[type=submit]")
            page.goto(f"{base}/admin/ui/registry/modelversion/")
            row = page.locator("tr", has_text="v1.2.0")
            row.locator("input[name=_selected_action]").check()
            page.select_option("select[name=action]", "serve_as_treatment")
            page.click("button[name=index]")
            page.wait_for_selector("#confirm-action")
            assert "Serve v1.2.0 on the treatment variant" in page.content()
            page.fill("#id_reason", "promote the new svd")
            page.click("#confirm-action")
            # The click posts and redirects; read the page only once the result message is there.
            page.wait_for_selector("ul.messagelist li")
            assert "control v1.0.0, treatment v1.2.0" in page.content()
            page.screenshot(path=str(tmp_path / "after-switch.png"))
            page.goto(f"{base}/admin/ui/registry/servingstate/")
            assert "v1.2.0" in page.locator("#result_list").inner_text()
            page.goto(f"{base}/admin/ui/registry/servingstatechange/")
            history = page.locator("#result_list").inner_text()
            assert "carol" in history and "promote the new svd" in history
            browser.close()
            # Propagation within a second is test_propagation's job; here the flow matters, so allow for a busy machine.
            deadline = time.monotonic() + 10
            served = ""
            while time.monotonic() < deadline and served != "v1.2.0":
                served = json.loads(http_get(f"{base}/recommendations?userId={TREATED}")[1])["modelVersion"]
            assert served == "v1.2.0"
    finally:
        embedded_db_stop(server)
    assert os.path.getsize(tmp_path / "after-switch.png") > 0
