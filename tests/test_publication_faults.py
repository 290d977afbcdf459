"""Crashes around publication and notification: nothing personal is left behind, disk and warehouse
never silently disagree, and a notice resent after a crash carries the same delivery id."""

from __future__ import annotations

import email
import json
import os
import signal
import subprocess
import sys
import threading
import time
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pytest

from dtsen.notify.deliver import notify_programs, version_to_announce
from dtsen.notify.messages import Email
from dtsen.notify.subscribers import parse_subscribers
from dtsen.notify.webhook import DuplicateDelivery, WebhookVerifier
from dtsen.publish.version import PublishError, publish_version, unrecorded_warning
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import audited_sample_candidate

SECRET = b"a-test-secret-of-the-pbi-team"


@pytest.fixture(scope="module")
def candidate(module_warehouse, tmp_path_factory):
    """Sample round 2026-Q1 merged, its candidate built and audited, not yet published."""
    root = tmp_path_factory.mktemp("publish")
    return module_warehouse, root, audited_sample_candidate(module_warehouse, root)


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_a_publication_killed_mid_write_leaves_no_personal_data_behind(candidate):
    conn, root, version = candidate
    url = engine.libpq_conninfo(engine.database_url())
    script = (
        "import sys; from pathlib import Path; from dtsen.warehouse import engine; "
        "from dtsen.publish.version import publish_version; "
        "c = engine.connect(); publish_version(c, int(sys.argv[1]), Path(sys.argv[2])); c.commit()"
    )
    with psycopg.connect(url) as blocker:
        blocker.execute(
            "LOCK TABLE publish.recipient_span IN ACCESS EXCLUSIVE MODE"
        )  # the program files wait
        child = subprocess.Popen([sys.executable, "-c", script, str(version), str(root)])
        deadline = time.monotonic() + 60
        while not list((root / "versions").glob(".incomplete-*/anggota.parquet")):
            assert time.monotonic() < deadline and child.poll() is None, (
                "the publication never started writing"
            )
            time.sleep(0.02)
        time.sleep(0.2)  # let it reach the program files, where it waits for the lock
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        blocker.rollback()
    leftover = list((root / "versions").glob(".incomplete-*"))
    assert leftover and (leftover[0] / "anggota.parquet").exists()  # full NIKs and names, on disk

    with conn.transaction():
        published = publish_version(conn, version, root)
    assert published.published_now and published.path.exists()
    assert list((root / "versions").glob(".incomplete-*")) == []  # cleaned up by the next attempt
    for item in [published.path, *published.path.rglob("*")]:
        assert _mode(item) & 0o007 == 0, item  # nothing world-readable
    assert _mode(published.path / "anggota.parquet") == 0o640 and _mode(published.path) == 0o750


def test_a_version_on_disk_whose_publication_was_not_recorded_is_reported(candidate):
    conn, root, version = candidate
    with conn.transaction():
        publish_version(conn, version, root)  # published (or already)
    # the crash window: the folder was renamed into place, the warehouse's commit never happened
    conn.execute("UPDATE publish.version SET status = 'AUDITED' WHERE version = %s", (version,))
    conn.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_id = '2026-Q1'")
    conn.commit()
    try:
        assert f"version {version} is in" in unrecorded_warning(conn, root)
        with pytest.raises(PublishError, match="never recorded"):
            version_to_announce(conn, None, root)
        cli = subprocess.run(
            [sys.executable, "-m", "dtsen.cli", "versions"],
            env=os.environ | {"DTSEN_PUBLISH_ROOT": str(root)},
            capture_output=True,
            text=True,
        )
        assert cli.returncode == 4 and "never recorded" in cli.stderr, cli.stderr
    finally:
        conn.commit()  # end the reads above: the publication below is a transaction of its own
        with conn.transaction():
            adopted = publish_version(conn, version, root)  # the next publication adopts the folder
    assert adopted.published_now and unrecorded_warning(conn, root) is None
    assert version_to_announce(conn, None, root) == version
    conn.commit()


class _Sink:
    """An SMTP server that, on the first message, kills the notifier's warehouse connection before
    accepting it: the crash between sending and recording the delivery."""

    def __init__(self, kill):
        self.messages: list = []
        self._kill = kill

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        if len(self.messages) == 1:
            self._kill()
        return "250 OK"


def test_a_notice_resent_after_a_crash_carries_the_same_delivery_id(candidate, tmp_path, monkeypatch):
    from aiosmtpd.controller import Controller

    monkeypatch.setenv("DTSEN_CALLBACK_ALLOWLIST", "127.0.0.1")  # the webhook receiver below

    conn, root, version = candidate
    with conn.transaction():
        publish_version(conn, version, root)
    url = engine.libpq_conninfo(engine.database_url())
    notifier: dict = {}

    def kill_notifier() -> None:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (notifier["pid"],))

    verifier = WebhookVerifier(SECRET)
    received: list[dict] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                payload = verifier.verify(dict(self.headers), body)
                received.append({"payload": payload, "duplicate": False})
                verifier.processed(payload["delivery_id"])
                if len(received) == 1:
                    kill_notifier()
                status = 200
            except DuplicateDelivery:
                received.append({"payload": json.loads(body), "duplicate": True})
                status = 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = _Sink(kill_notifier)
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    os.environ["DTSEN_TEST_HOOK_SECRET"] = SECRET.decode()
    subscribers = parse_subscribers(
        {
            "data_ops": {"emails": ["ops@dtsen.example"]},
            "programs": {
                "pbi_jk": {
                    "emails": ["pbi@bpjs.example"],
                    "webhooks": [
                        {
                            "url": f"http://127.0.0.1:{server.server_address[1]}/h",
                            "secret_env": "DTSEN_TEST_HOOK_SECRET",
                        }
                    ],
                }
            },
        }
    )

    def send(message: Email) -> None:
        import smtplib
        from email.message import EmailMessage

        out = EmailMessage()
        out["To"], out["From"], out["Subject"] = ", ".join(message.to), "dtsen@localhost", message.subject
        for key, value in message.headers().items():
            out[key] = value
        out.set_content(message.body)
        with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
            smtp.send_message(out)

    try:
        attempts = 0
        while True:  # what Airflow's retries do: a new connection each time
            attempts += 1
            with psycopg.connect(url) as attempt:
                notifier["pid"] = attempt.info.backend_pid
                try:
                    notify_programs(attempt, version, subscribers, send)
                    break
                except psycopg.OperationalError:
                    assert attempts < 5
        with psycopg.connect(url) as last:  # a later run sends nothing more
            notifier["pid"] = last.info.backend_pid
            assert notify_programs(last, version, subscribers, send) == {
                "version": version,
                "emails_sent": 0,
                "webhooks_delivered": 0,
            }
    finally:
        controller.stop()
        server.shutdown()
        del os.environ["DTSEN_TEST_HOOK_SECRET"]
    assert attempts == 3
    ids = [m["Message-ID"] for m in sink.messages]
    assert len(ids) == 2 and ids[0] == ids[1] and ids[0].endswith("@dtsen>")  # the resend is recognisable
    assert sink.messages[0]["X-DTSEN-Delivery-Id"] == sink.messages[1]["X-DTSEN-Delivery-Id"]
    assert [r["duplicate"] for r in received] == [False, True]
    assert received[0]["payload"]["delivery_id"] == received[1]["payload"]["delivery_id"]
    assert received[0]["payload"]["program"] == "pbi_jk" and "timestamp" in received[0]["payload"]
