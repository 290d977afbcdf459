"""The Airflow UI in a real browser (Debian's headless Chromium driven over the DevTools protocol):
both DAGs are listed, the update DAG's documentation is shown, and "Trigger" opens the form with the
round's parameters."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

from dtsen_dev.local_airflow import airflow_env, free_port, migrate_airflow_db

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)


def _wait_http(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


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
        _wait_http(f"http://127.0.0.1:{port}/api/v2/version", 90)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    debug_port = free_port()
    profile = tempfile.mkdtemp(prefix="dtsen-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--remote-debugging-port={debug_port}",
            f"--user-data-dir={profile}",
            "--window-size=1400,1000",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{debug_port}/json/version", 30)
        yield debug_port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """The few DevTools calls the test needs: navigate, evaluate JavaScript, wait for text."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                return message.get("result", {})

    async def text(self) -> str:
        result = await self.call(
            "Runtime.evaluate", expression="document.body ? document.body.innerText : ''", returnByValue=True
        )
        return result.get("result", {}).get("value", "")

    async def wait_for(self, *needles: str, seconds: float = 30) -> str:
        deadline = time.monotonic() + seconds
        text = ""
        while time.monotonic() < deadline:
            text = await self.text()
            if all(n in text for n in needles):
                return text
            await asyncio.sleep(0.5)
        raise AssertionError(f"never saw {needles!r}; page shows: {text[:1500]!r}")

    async def click_text(self, label: str) -> None:
        script = (
            "(() => { const el = [...document.querySelectorAll('button, a, [role=button]')]"
            f".find(e => (e.innerText || '').trim().startsWith({json.dumps(label)})"
            f" || e.getAttribute('aria-label') === {json.dumps(label)});"
            " if (!el) return false; el.click(); return true; })()"
        )
        deadline = time.monotonic() + 20  # the single-page app renders its buttons after its data loads
        while time.monotonic() < deadline:
            clicked = await self.call("Runtime.evaluate", expression=script, returnByValue=True)
            if clicked.get("result", {}).get("value") is True:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"no button {label!r}; page shows: {(await self.text())[:1000]!r}")


async def _ui_walkthrough(debug_port: int, base: str) -> dict[str, str]:
    import websockets

    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list") as r:
        target = next(t for t in json.load(r) if t["type"] == "page")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=2**24) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        seen = {}
        await page.call("Page.navigate", url=f"{base}/dags")
        seen["list"] = await page.wait_for("dtsen_update_round", "dtsen_notify_programs")
        await page.call("Page.navigate", url=f"{base}/dags/dtsen_update_round")
        await page.wait_for("dtsen_update_round")
        await page.click_text("Dag Docs")
        seen["docs"] = await page.wait_for("DTSEN update round", "Trigger form")
        await page.call("Page.navigate", url=f"{base}/dags/dtsen_update_round")
        await page.wait_for("dtsen_update_round")
        await page.click_text("Trigger")
        seen["trigger"] = await page.wait_for(
            "Run Parameters", "round_id", "approval_reason", "quality_gate_threshold"
        )
        return seen


def test_the_ui_lists_both_dags_shows_their_docs_and_the_trigger_form(airflow_ui, browser):
    seen = asyncio.run(_ui_walkthrough(browser, airflow_ui))
    assert "dtsen_notify_programs" in seen["list"]
    assert "approve_drift" in seen["docs"]
    assert "dry_run" in seen["trigger"]
