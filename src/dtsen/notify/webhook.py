"""Signed webhook POSTs to program owners and registry API subscribers, and the reference verifier
for receivers.

Each POST goes only where the callback rules allow (dtsen.notify.egress, checked right before it and
connected to the address checked) and is bounded: DTSEN_WEBHOOK_TIMEOUT_SECONDS all told, no redirect
followed, no proxy, the answer's body not read. dtsen.notify.deliver records what was not delivered
for a later retry.

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

import asyncio
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

import httpx

from dtsen.notify import egress

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


@dataclass(frozen=True)
class Attempt:
    """The outcome of one POST."""

    status: int | None  # the receiver's HTTP status; None: no answer
    error: str | None  # None: delivered (a 2xx); else why not, in words (never personal data)
    maybe_arrived: bool  # the request may have reached a receiver that acted on it
    # worth a second attempt at once: a blip (a 5xx, 408 or 429, a refused or reset connection), not
    # a refused destination, a 4xx or a receiver that did not answer in time
    again_now: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


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


def _pinned(url: str, address: egress.IPAddress) -> tuple[httpx.URL, dict, dict]:
    """The URL to connect to `address`, and the Host header and TLS server name of the URL's own host
    (so the receiver's virtual host and certificate are those of its name)."""
    original = httpx.URL(url)
    extensions = {"sni_hostname": original.raw_host.decode("ascii")} if original.scheme == "https" else {}
    return original.copy_with(host=str(address)), {"Host": original.netloc.decode("ascii")}, extensions


async def post_once(
    url: str,
    payload: dict,
    secret: bytes,
    *,
    delivery_id: str,
    redelivery: bool,
    allowlist: egress.Allowlist,
    timeout: float,
) -> Attempt:
    """One signed POST of `payload` (signed_request), as `post_body`."""
    body, headers = signed_request(payload, secret, delivery_id, int(time.time()), redelivery)
    return await post_body(url, body, headers, allowlist=allowlist, timeout=timeout)


async def post_body(
    url: str, body: bytes, headers: Mapping[str, str], *, allowlist: egress.Allowlist, timeout: float
) -> Attempt:
    """One POST of `body`, within `timeout` seconds all told: resolving the host, connecting, TLS,
    sending and the answer's status line (its body is not read). The URL is checked again now (egress),
    every address its host resolves to is checked, and the connection goes to a checked address: what
    was checked is what is reached. No redirect is followed and no proxy is used."""
    sent = False

    async def trace(event: str, _info: dict) -> None:
        nonlocal sent
        sent = sent or event.endswith("send_request_headers.started")

    try:
        async with asyncio.timeout(timeout):
            destination = egress.check_url(url, allowlist)
            address = (await egress.resolve_async(destination))[0]
            target, host, extensions = _pinned(url, address)
            # httpx's own timeouts a little longer: the deadline above is the one that ends an attempt
            async with httpx.AsyncClient(
                trust_env=False, follow_redirects=False, timeout=timeout + 1
            ) as client:
                request = client.build_request(
                    "POST",
                    target,
                    content=body,
                    headers=dict(headers) | host,
                    extensions=extensions | {"trace": trace},
                )
                response = await client.send(request, stream=True)
                await response.aclose()
    except egress.RefusedDestination as exc:
        return Attempt(None, f"refused: {exc}", False)
    except (TimeoutError, httpx.TimeoutException):  # the request may have been sent
        return Attempt(None, f"no answer within {timeout:g} s", sent)
    except (httpx.HTTPError, OSError) as exc:  # refused, reset, a TLS failure ...
        return Attempt(None, type(exc).__name__, sent, again_now=True)
    status = response.status_code
    if 200 <= status < 300:
        return Attempt(status, None, True)
    # a 5xx: it may have acted, then failed; a 4xx: the receiver refused it
    return Attempt(status, f"HTTP {status}", status >= 500, again_now=status >= 500 or status in (408, 429))


def post_signed(
    url: str,
    payload: dict,
    secret: bytes,
    *,
    delivery_id: str,
    redelivery: bool = False,
    attempts: int = 4,
    backoff: float = 1.0,
    timeout: float | None = None,
    allowlist: egress.Allowlist | None = None,
) -> Delivery:
    """POST until a 2xx, each attempt as `post_once` (the URL checked anew); a 4xx other than 408/429
    and a refused destination are final. `timeout` and `allowlist` default to the settings
    (DTSEN_WEBHOOK_TIMEOUT_SECONDS, DTSEN_CALLBACK_ALLOWLIST). `redelivery`: an earlier POST of this
    delivery may have arrived; a retry after one that may have (a timeout, a 5xx answer) says so too,
    one after a refused connection does not."""
    from dtsen.config import settings

    if timeout is None or allowlist is None:
        cfg = settings()
        timeout = cfg.webhook_timeout_seconds if timeout is None else timeout
        allowlist = cfg.callback_allowlist if allowlist is None else allowlist
    last = "no attempt"
    maybe_arrived = redelivery
    for attempt in range(1, attempts + 1):
        outcome = asyncio.run(
            post_once(
                url,
                payload,
                secret,
                delivery_id=delivery_id,
                redelivery=maybe_arrived,
                allowlist=allowlist,
                timeout=timeout,
            )
        )
        if outcome.delivered:
            return Delivery(url, outcome.status or 0, attempt)
        last, maybe_arrived = outcome.error or "", maybe_arrived or outcome.maybe_arrived
        log.warning("webhook %s attempt %d failed: %s", url, attempt, last)
        if last.startswith("refused:") or (
            outcome.status is not None and 400 <= outcome.status < 500 and outcome.status not in (408, 429)
        ):
            break
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
        secret: bytes | str,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        *,
        seen: MutableMapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        # the subscribe answer gives the secret in JSON, so as a str; its UTF-8 bytes are the key
        self._secret = secret.encode() if isinstance(secret, str) else secret
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
