"""Real headless Chromium (Debian's) for the UI tests, driven over the DevTools protocol: start it,
open a page, navigate, read text (also inside the Airflow UI's plugin iframes), click, set the
Airflow token cookie and save screenshots. Development tooling: never part of the image."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from dtsen_dev.local_airflow import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def wait_http(url: str, seconds: float) -> None:
    """Until `url` answers (any status), or TimeoutError."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(url)


@contextlib.contextmanager
def chromium() -> Iterator[int]:
    """A headless Chromium; yields its DevTools port."""
    if CHROMIUM is None:
        raise RuntimeError("Debian's chromium is not installed")
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
        wait_http(f"http://127.0.0.1:{debug_port}/json/version", 30)
        yield debug_port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)


_TEXT_OF_FRAMES = """(() => {
  const parts = [document.body ? document.body.innerText : ''];
  for (const f of document.querySelectorAll('iframe')) {
    try { if (f.contentDocument && f.contentDocument.body) parts.push(f.contentDocument.body.innerText); }
    catch (e) { /* another origin */ }
  }
  return parts.join('\\n');
})()"""


class Page:
    """The few DevTools calls the UI tests need."""

    def __init__(self, ws) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(await self.ws.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def text(self) -> str:
        """The page's visible text, and that of its same-origin iframes (the plugin's views)."""
        return await self.evaluate(_TEXT_OF_FRAMES) or ""

    async def goto(self, url: str) -> None:
        await self.call("Page.navigate", url=url)

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
            if await self.evaluate(script) is True:
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"no button {label!r}; page shows: {(await self.text())[:1000]!r}")

    async def set_cookie(self, base_url: str, name: str, value: str) -> None:
        await self.call("Network.enable")
        await self.call("Network.setCookie", name=name, value=value, url=base_url, path="/")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


@contextlib.asynccontextmanager
async def open_page(debug_port: int):
    import websockets

    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list") as r:
        target = next(t for t in json.load(r) if t["type"] == "page")
    async with websockets.connect(target["webSocketDebuggerUrl"], max_size=2**26) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        yield page
