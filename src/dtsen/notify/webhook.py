"""Signed webhook POSTs to program owners, retried with backoff, and the reference verifier for
receivers.

The body is JSON and carries `delivery_id` (the same on every retry of one delivery), `timestamp`
(of this attempt) and `redelivery` (true when an earlier POST of this delivery may have reached the
receiver: a retry after a timeout or a 5xx answer, or a POST sent again because the notifier stopped
before recording the outcome of the last one). `X-DTSEN-Signature: sha256=<hex>` is
HMAC-SHA256 over `<timestamp>.<body>` with the subscriber's own secret; `X-DTSEN-Timestamp`,
`X-DTSEN-Delivery-Id` and `X-DTSEN-Redelivery` (true/false) repeat the three values. A receiver
checks the signature, refuses a timestamp outside a short window and a delivery id it has already
processed: `WebhookVerifier` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

import httpx

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DTSEN-Signature"
TIMESTAMP_HEADER = "X-DTSEN-Timestamp"
DELIVERY_HEADER = "X-DTSEN-Delivery-Id"
REDELIVERY_HEADER = "X-DTSEN-Redelivery"
DEFAULT_MAX_AGE_SECONDS = 300


class WebhookError(RuntimeError):
    def __init__(self, message: str, *, maybe_arrived: bool = True):
        super().__init__(message)
        self.maybe_arrived = maybe_arrived  # False: no attempt reached a receiver that could act on it


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """The signature alone (no freshness, no replay check): use WebhookVerifier to receive."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass
class Delivery:
    url: str
    status: int
    attempts: int


def signed_request(
    payload: dict, secret: bytes, delivery_id: str, timestamp: int, redelivery: bool = False
) -> tuple[bytes, dict]:
    """The body and headers of one attempt: the delivery id, timestamp and redelivery flag are
    signed with the rest."""
    body = json.dumps(
        {**payload, "delivery_id": delivery_id, "timestamp": timestamp, "redelivery": redelivery},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, str(timestamp), body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery_id,
        REDELIVERY_HEADER: "true" if redelivery else "false",
    }
    return body, headers


def post_signed(
    url: str,
    payload: dict,
    secret: bytes,
    *,
    delivery_id: str,
    redelivery: bool = False,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float = 10.0,
) -> Delivery:
    """POST until a 2xx; 4xx other than 408/429 is final (the receiver refuses it); else retry.
    `redelivery`: an earlier POST of this delivery may have arrived; a retry after one that may have
    (a timeout, a 5xx answer) says so too, one after a refused connection does not."""
    last = "no attempt"
    maybe_arrived = redelivery
    for attempt in range(1, attempts + 1):
        body, headers = signed_request(payload, secret, delivery_id, int(time.time()), maybe_arrived)
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout)
            if 200 <= response.status_code < 300:
                return Delivery(url, response.status_code, attempt)
            last = f"HTTP {response.status_code}"
            maybe_arrived = maybe_arrived or response.status_code >= 500  # it may have acted, then failed
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # it never reached the receiver
            last = type(exc).__name__
        except httpx.HTTPError as exc:  # sent, but no answer: it may have arrived
            last = type(exc).__name__
            maybe_arrived = True
        log.warning("webhook %s attempt %d failed: %s", url, attempt, last)
        if attempt < attempts:
            time.sleep(backoff * 2 ** (attempt - 1))
    raise WebhookError(f"webhook {url} not delivered: {last}", maybe_arrived=maybe_arrived)


# -- receiving ------------------------------------------------------------------------------------


class WebhookRefused(Exception):
    """The request must not be acted on; `status` is the HTTP status to answer with."""

    status = 401


class StaleDelivery(WebhookRefused):
    status = 400


class DuplicateDelivery(WebhookRefused):
    """Already processed: answer 2xx (the sender stops retrying) and do nothing."""

    status = 200


class WebhookVerifier:
    """What a program team's receiver runs on every DTSEN webhook request.

        verifier = WebhookVerifier(secret)
        payload = verifier.verify(request.headers, request.body)   # raises WebhookRefused
        ... act on payload ...
        verifier.processed(payload["delivery_id"])                 # only after acting on it

    Refuses a bad signature, a timestamp further than `max_age_seconds` from now (default 5 min) or
    differing from the signed body's, and a delivery id already processed. Ids are remembered for
    the window only: an older replay is already refused by its timestamp. A receiver with several
    processes passes a shared `seen` mapping (delivery id -> time processed).
    """

    def __init__(
        self,
        secret: bytes,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        *,
        seen: MutableMapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self._secret = secret
        self._max_age = max_age_seconds
        self._seen = {} if seen is None else seen
        self._clock = clock
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict:
        lowered = {k.lower(): v for k, v in headers.items()}
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        if not signature or not timestamp or not verify(self._secret, timestamp, body, signature):
            raise WebhookRefused("bad or missing signature")
        payload = json.loads(body)
        if str(payload.get("timestamp")) != timestamp or not payload.get("delivery_id"):
            raise WebhookRefused("the signed body lacks the timestamp or delivery id of the request")
        now = self._clock()
        if not timestamp.isdigit() or abs(now - int(timestamp)) > self._max_age:
            raise StaleDelivery(f"timestamp outside the {self._max_age:.0f} s window (a replay?)")
        with self._lock:
            for did, at in list(self._seen.items()):
                if now - at > 2 * self._max_age:
                    del self._seen[did]
            if payload["delivery_id"] in self._seen:
                raise DuplicateDelivery(f"delivery {payload['delivery_id']} was already processed")
        return payload

    def processed(self, delivery_id: str) -> None:
        with self._lock:
            self._seen[delivery_id] = self._clock()
