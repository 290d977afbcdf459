"""A notice whose sending was accepted but never recorded (the notifier killed in between) is sent
again on the rerun: at least once, never silently twice. The second copy carries the same delivery
id and Message-ID and says it is a resend; a webhook says it is a redelivery; nothing else is sent
twice, and a notice the mail relay refused is not taken for one that may have arrived.

Real processes, a real SMTP server (aiosmtpd) and a real HTTP receiver: the receiver, on accepting
the armed notice, locks publish.notification before answering OK, so the sender, told OK, waits to
record the delivery; it is killed (SIGKILL) there."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest

from dtsen.notify.webhook import WebhookVerifier
from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import run_steps

SECRET = b"a-test-secret-of-the-pbi-team"
ROUND = "2026-Q1"
CHILD = (
    "import json, sys\n"
    "from dtsen.round import NOTIFY_PROGRAMS, STEP, RoundContext\n"
    "step = NOTIFY_PROGRAMS if sys.argv[1] == NOTIFY_PROGRAMS.name else STEP[sys.argv[1]]\n"
    f"print(json.dumps(step.run(RoundContext.create({ROUND!r}))))\n"
)


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory) -> Path:
    """Sample round 2026-Q1 merged, its feedback written and its version published; nobody told yet."""
    root = tmp_path_factory.mktemp("publish")
    landing = SAMPLE_DIR / "landing"
    run_steps(ROUND, landing_root=landing, publish_root=root, until="feedback")
    done = run_steps(ROUND, landing_root=landing, publish_root=root, only=("rank_and_audit", "publish"))
    assert done["publish"]["published_now"], done["rank_and_audit"].get("report")
    told = module_warehouse.execute(
        "SELECT count(*) FROM publish.notification WHERE topic LIKE 'round:%' OR topic LIKE '%:program:%'"
    ).fetchone()
    assert told == (0,)
    module_warehouse.commit()
    return root


class Crash:
    """Armed with a kind of notice ("email", "webhook"): the receiver that accepts the next one locks
    publish.notification before it answers OK, so the sender waits to record it, and is killed there."""

    def __init__(self) -> None:
        self.url = engine.libpq_conninfo(engine.database_url())
        self.armed: str | None = None
        self.holder: psycopg.Connection | None = None
        self.held = threading.Event()

    def accepted(self, kind: str) -> None:  # a receiver calls this before it answers OK
        if self.armed == kind:
            self.armed = None
            self.holder = psycopg.connect(self.url)
            self.holder.execute("LOCK TABLE publish.notification IN EXCLUSIVE MODE")
            self.held.set()

    def kill_when_recording(self, child: subprocess.Popen) -> None:
        """Wait until `child` was told OK and waits to record that delivery; SIGKILL it there."""
        deadline = time.monotonic() + 120
        while not self.held.is_set():
            assert child.poll() is None, f"the sender ended before sending: {child.communicate()}"
            assert time.monotonic() < deadline, "nothing was sent"
            time.sleep(0.02)
        with psycopg.connect(self.url, autocommit=True) as observer:
            holder = self.holder.info.backend_pid
            waiting = None
            while waiting is None:
                assert time.monotonic() < deadline, "the sender never went on to record the delivery"
                waiting = observer.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (holder,)
                ).fetchone()
                time.sleep(0.02)
            assert waiting[1].startswith("UPDATE publish.notification SET status"), waiting[1]  # recording it
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            self.holder.rollback()
            self.holder.close()
            self.held.clear()
            while observer.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (waiting[0],)).fetchone():
                assert time.monotonic() < deadline, "the killed sender's session never ended"
                time.sleep(0.02)


class Sink:
    """The mail relay: keeps what it accepts; refuses the next message while `refuse` is set."""

    def __init__(self, crash: Crash) -> None:
        self.crash = crash
        self.messages: list = []
        self.refuse = False

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        if self.refuse:
            self.refuse = False
            return "451 4.3.0 relay unavailable, try again later"
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        self.crash.accepted("email")
        return "250 OK"


@pytest.fixture
def receivers():
    """(crash, smtp sink, webhook calls, environment for the notifier process)."""
    from aiosmtpd.controller import Controller

    crash = Crash()
    sink = Sink(crash)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    verifier = WebhookVerifier(SECRET)
    calls: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            calls.append({"headers": dict(self.headers), "payload": json.loads(body)})
            try:
                verifier.verify(dict(self.headers), body)
            except Exception:  # noqa: BLE001 (a duplicate is answered 200 too, as the reference receiver does)
                pass
            crash.accepted("webhook")
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = os.environ | {
        "DTSEN_SMTP_URL": f"smtp://127.0.0.1:{port}",
        "DTSEN_TEST_HOOK_SECRET": SECRET.decode(),
        "DTSEN_CALLBACK_ALLOWLIST": f"127.0.0.1:{server.server_address[1]}",  # the receiver above
    }
    try:
        yield crash, sink, calls, env, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        controller.stop()
        server.shutdown()


def _notifier(step: str, env: dict, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, step],
        env=env | {"DTSEN_PUBLISH_ROOT": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(child: subprocess.Popen) -> dict:
    out, err = child.communicate(timeout=300)
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _row(conn: psycopg.Connection, target: str, topic_prefix: str) -> tuple:
    row = conn.execute(
        "SELECT status, attempts, delivery_id::text FROM publish.notification "
        "WHERE target = %s AND starts_with(topic, %s)",
        (target, topic_prefix),
    ).fetchone()
    conn.commit()
    return row


def _marked_as_resend(message) -> bool:
    return (
        message["X-DTSEN-Resend"] is not None
        and "[kirim ulang]" in message["Subject"]
        and message["X-DTSEN-Delivery-Id"] in message.get_content()
    )


def _assert_resent_once(messages: list, address: str) -> None:
    """`address` got two copies, the second marked as a resend of the first; every other address got one,
    not marked."""
    by_address = Counter(m["To"] for m in messages)
    assert by_address[address] == 2 and all(n == 1 for a, n in by_address.items() if a != address), by_address
    first, again = [m for m in messages if m["To"] == address]
    assert again["Message-ID"] == first["Message-ID"] and first["Message-ID"].endswith("@dtsen>")
    assert again["X-DTSEN-Delivery-Id"] == first["X-DTSEN-Delivery-Id"]
    assert not _marked_as_resend(first) and first["X-DTSEN-Resend"] is None
    assert _marked_as_resend(again), (again["Subject"], dict(again))
    assert again["Subject"].replace("[kirim ulang] ", "") == first["Subject"]
    assert not any(_marked_as_resend(m) for m in messages if m["To"] != address)


def test_a_region_email_accepted_but_not_recorded_is_resent_marked_and_a_refused_one_is_not(
    published, receivers, module_warehouse
):
    crash, sink, _, env, _ = receivers
    # the relay refuses the first region email (an outage): the task fails, that email never arrived
    sink.refuse = True
    refused = _notifier("notify_regions", env, published)
    refused.communicate(timeout=300)
    assert refused.returncode != 0 and sink.messages == []
    # the next run: the relay accepts it, and the notifier dies before recording that
    crash.armed = "email"
    killed = _notifier("notify_regions", env, published)
    crash.kill_when_recording(killed)
    assert len(sink.messages) == 1
    first_region = sink.messages[0]["To"]
    assert _row(module_warehouse, first_region, f"round:{ROUND}:region:")[0] == "PENDING"
    assert not _marked_as_resend(sink.messages[0])  # the refused sending was no delivery
    # the rerun sends it again, marked, and every other region's email once
    summary = _finished(_notifier("notify_regions", env, published))
    assert summary["emails_sent"] == len(sink.messages) - 1 >= 2
    _assert_resent_once(sink.messages, first_region)
    status, attempts, did = _row(module_warehouse, first_region, f"round:{ROUND}:region:")
    assert status == "SENT" and attempts == 3 and did == sink.messages[0]["X-DTSEN-Delivery-Id"]
    # and a run after that sends nothing
    count = len(sink.messages)
    assert _finished(_notifier("notify_regions", env, published))["emails_sent"] == 0
    assert len(sink.messages) == count


def test_a_program_email_and_a_webhook_accepted_but_not_recorded_are_resent_marked(
    published, receivers, module_warehouse, tmp_path
):
    crash, sink, calls, env, hook_url = receivers
    document = json.loads((PROJECT_ROOT / "config" / "subscribers.json").read_text(encoding="utf-8"))
    document["programs"]["pbi_jk"]["webhooks"] = [{"url": hook_url, "secret_env": "DTSEN_TEST_HOOK_SECRET"}]
    (tmp_path / "subscribers.json").write_text(json.dumps(document), encoding="utf-8")
    env = env | {"DTSEN_SUBSCRIBERS": str(tmp_path / "subscribers.json")}
    version = module_warehouse.execute("SELECT version FROM publish.current_version").fetchone()[0]
    module_warehouse.commit()
    topic = f"version:{version}:program:"

    crash.armed = "email"  # killed after the relay accepted the first program email
    crash.kill_when_recording(_notifier("notify_programs", env, published))
    assert len(sink.messages) == 1
    first_owner = sink.messages[0]["To"]
    assert _row(module_warehouse, first_owner, topic)[0] == "PENDING"
    crash.armed = "webhook"  # the rerun: killed after the receiver answered 200 to the webhook
    crash.kill_when_recording(_notifier("notify_programs", env, published))
    assert len(calls) == 1 and _row(module_warehouse, hook_url, topic)[0] == "PENDING"
    summary = _finished(_notifier("notify_programs", env, published))
    assert summary["webhooks_delivered"] == 1

    _assert_resent_once(sink.messages, first_owner)
    assert len(sink.messages) == len(document["programs"]) + 1
    first, again = calls
    assert again["payload"]["delivery_id"] == first["payload"]["delivery_id"]
    assert again["headers"]["X-DTSEN-Delivery-Id"] == first["headers"]["X-DTSEN-Delivery-Id"]
    assert first["payload"]["redelivery"] is False and first["headers"]["X-DTSEN-Redelivery"] == "false"
    assert again["payload"]["redelivery"] is True and again["headers"]["X-DTSEN-Redelivery"] == "true"
    assert _row(module_warehouse, first_owner, topic)[:2] == ("SENT", 2)
    assert _row(module_warehouse, hook_url, topic)[:2] == ("200", 2)
    # a run after that sends nothing
    again_summary = _finished(_notifier("notify_programs", env, published))
    assert again_summary["emails_sent"] == again_summary["webhooks_delivered"] == 0
    assert len(sink.messages) == len(document["programs"]) + 1 and len(calls) == 2
