"""The Airflow UI in a real browser (Debian's headless Chromium driven over the DevTools protocol):
both DAGs are listed, the update DAG's documentation is shown, and "Trigger" opens the form with the
round's parameters."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from dtsen_dev.browser import CHROMIUM, chromium, open_page, wait_http
from dtsen_dev.local_airflow import airflow_env, free_port, migrate_airflow_db

# per test, not per module: a test here that needs no browser runs where Chromium is missing
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-ui")
    port = free_port()
    env = (
        os.environ
        | airflow_env(free_port(), home=home)  # the project's own settings, as the main job uses them
        | {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # no login page in the way
            "DTSEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unused",  # the UI never needs the warehouse
        }
    )
    migrate_airflow_db(env)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "dags", "reserialize"], env=env, check=True, capture_output=True)
    server = subprocess.Popen(
        [*airflow, "api-server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/version", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with chromium() as debug_port:
        yield debug_port


async def _ui_walkthrough(debug_port: int, base: str) -> dict[str, str]:
    async with open_page(debug_port) as page:
        seen = {}
        await page.goto(f"{base}/dags")
        seen["list"] = await page.wait_for("dtsen_update_round", "dtsen_notify_programs")
        await page.goto(f"{base}/dags/dtsen_update_round")
        await page.wait_for("dtsen_update_round")
        await page.click_text("Dag Docs")
        seen["docs"] = await page.wait_for("DTSEN update round", "Trigger form")
        await page.goto(f"{base}/dags/dtsen_update_round")
        await page.wait_for("dtsen_update_round")
        await page.click_text("Trigger")
        seen["trigger"] = await page.wait_for(
            "Run Parameters", "round_id", "approval_reason", "quality_gate_threshold"
        )
        return seen


@needs_chromium
def test_the_ui_lists_both_dags_shows_their_docs_and_the_trigger_form(airflow_ui, browser):
    seen = asyncio.run(_ui_walkthrough(browser, airflow_ui))
    assert "dtsen_notify_programs" in seen["list"]
    assert "approve_drift" in seen["docs"]
    assert "dry_run" in seen["trigger"]
