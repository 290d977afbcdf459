"""Signed webhook POSTs to program owners, retried with backoff.

The body is JSON; `X-DTSEN-Signature: sha256=<hex>` is HMAC-SHA256 over `<timestamp>.<body>` with
the subscriber's own secret, and `X-DTSEN-Timestamp` carries the timestamp, so a receiver can check
both origin and freshness (reject old timestamps to stop replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DTSEN-Signature"
TIMESTAMP_HEADER = "X-DTSEN-Timestamp"


class WebhookError(RuntimeError):
    pass


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class Delivery:
    url: str
    status: int
    attempts: int


def post_signed(
    url: str, payload: dict, secret: bytes, *, attempts: int = 4, backoff: float = 1.0, timeout: float = 10.0
) -> Delivery:
    """POST until a 2xx; 4xx other than 408/429 is final (the receiver refuses it); else retry."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    last = "no attempt"
    for attempt in range(1, attempts + 1):
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, timestamp, body),
            TIMESTAMP_HEADER: timestamp,
        }
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout)
            if 200 <= response.status_code < 300:
                return Delivery(url, response.status_code, attempt)
            last = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        log.warning("webhook %s attempt %d failed: %s", url, attempt, last)
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise WebhookError(f"webhook {url} not delivered: {last}")
