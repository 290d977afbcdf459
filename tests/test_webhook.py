"""Webhooks to program teams cannot be replayed: the delivery id and timestamp are signed, and the
reference verifier refuses stale, altered and already processed deliveries (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from dtsen.notify.webhook import (
    DuplicateDelivery,
    StaleDelivery,
    WebhookRefused,
    WebhookVerifier,
    post_signed,
)

SECRET = b"receiver-secret-of-pkh"


@pytest.fixture
def receiver(monkeypatch):
    """An HTTP server that keeps each request's headers and body and answers 200, on loopback: allowed
    as an administrator allows an internal receiver (DTSEN_CALLBACK_ALLOWLIST)."""
    monkeypatch.setenv("DTSEN_CALLBACK_ALLOWLIST", "127.0.0.1")
    requests: list[tuple[dict, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's hook name)
            requests.append((dict(self.headers), self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/dtsen", requests
    server.shutdown()


def test_the_delivery_id_and_timestamp_are_in_the_signed_body(receiver):
    url, requests = receiver
    post_signed(url, {"event": "dtsen.version.published", "version": 3}, SECRET, delivery_id="d-1")
    headers, body = requests[0]
    payload = WebhookVerifier(SECRET).verify(headers, body)
    assert payload["delivery_id"] == "d-1" and payload["version"] == 3
    assert str(payload["timestamp"]) == headers["X-DTSEN-Timestamp"]


def test_a_replayed_request_is_refused_once_processed(receiver):
    url, requests = receiver
    post_signed(url, {"version": 3}, SECRET, delivery_id="d-2")
    headers, body = requests[0]
    verifier = WebhookVerifier(SECRET)
    verifier.processed(verifier.verify(headers, body)["delivery_id"])
    httpx.post(url, content=body, headers=headers)  # an attacker replays the captured request
    with pytest.raises(DuplicateDelivery):
        verifier.verify(*requests[1])


def test_a_request_older_than_the_window_is_refused(receiver):
    url, requests = receiver
    post_signed(url, {"version": 3}, SECRET, delivery_id="d-3")
    headers, body = requests[0]
    sent_at = int(headers["X-DTSEN-Timestamp"])
    with pytest.raises(StaleDelivery):
        WebhookVerifier(SECRET, clock=lambda: sent_at + 301).verify(headers, body)
    assert WebhookVerifier(SECRET, max_age_seconds=600, clock=lambda: sent_at + 301).verify(headers, body)


def test_an_altered_body_or_a_refreshed_timestamp_is_refused(receiver):
    url, requests = receiver
    post_signed(url, {"version": 3, "recipients": 10}, SECRET, delivery_id="d-4")
    headers, body = requests[0]
    verifier = WebhookVerifier(SECRET)
    altered = json.dumps({**json.loads(body), "recipients": 99}).encode()
    with pytest.raises(WebhookRefused):
        verifier.verify(headers, altered)
    refreshed = dict(headers) | {"X-DTSEN-Timestamp": str(int(headers["X-DTSEN-Timestamp"]) + 1)}
    with pytest.raises(WebhookRefused):
        verifier.verify(refreshed, body)
    with pytest.raises(WebhookRefused):
        WebhookVerifier(b"another-secret").verify(headers, body)
