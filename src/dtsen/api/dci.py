"""The DCI Social Registry envelope, as far as this service speaks it (docs/registry-api.md):
checking a request's `header` and `message`, and building the `on-search` / subscription answers."""

from __future__ import annotations

import datetime as dt
import re
import uuid

REGISTRY_TYPE = "ns:dtsen:RegistryType:Social"
RECORD_TYPE = "dtsen:ProgramRecipient"
VERSION_EVENT = "dtsen:VersionPublished"
_LOCALE = re.compile(r"^[a-z]{3}$")


class EnvelopeError(ValueError):
    """A request that is not a well-formed DCI envelope: HTTP 400 with `code` (err.request.bad)."""

    def __init__(self, message: str, code: str = "err.request.bad"):
        super().__init__(message)
        self.code = code


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _timestamp(value: object, where: str) -> None:
    text = str(value or "")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise EnvelopeError(f"{where} must be an ISO 8601 date-time with a time zone") from exc
    if parsed.tzinfo is None:
        raise EnvelopeError(f"{where} must carry a time zone (e.g. 2026-04-01T08:00:00+07:00)")


def check_envelope(body: object, action: str) -> tuple[dict, dict]:
    """(header, message) of a request whose header says `action`; EnvelopeError otherwise."""
    if not isinstance(body, dict):
        raise EnvelopeError("the body must be a JSON object with header and message")
    header, message = body.get("header"), body.get("message")
    if not isinstance(header, dict) or not isinstance(message, dict):
        raise EnvelopeError("the envelope needs a header object and a message object")
    missing = [
        k
        for k in ("message_id", "message_ts", "action", "sender_id", "total_count")
        if header.get(k) in (None, "")
    ]
    if missing:
        raise EnvelopeError(f"header is missing {', '.join(missing)}")
    if header["action"] != action:
        raise EnvelopeError(f"header.action must be {action!r} here", "err.request.bad")
    if str(header.get("version", "1.0.0")) != "1.0.0":
        raise EnvelopeError(
            "only version 1.0.0 of the DCI messages is supported", "err.version.not_supported"
        )
    if header.get("is_msg_encrypted"):
        raise EnvelopeError(
            "encrypted messages are not supported (the transport is TLS)", "err.encryption.invalid"
        )
    if not isinstance(header["total_count"], int) or isinstance(header["total_count"], bool):
        raise EnvelopeError("header.total_count must be an integer")
    _timestamp(header["message_ts"], "header.message_ts")
    transaction = message.get("transaction_id")
    if not isinstance(transaction, str) or not transaction or len(transaction) > 99:
        raise EnvelopeError("message.transaction_id must be a string of 1-99 characters")
    return header, message


def check_item(item: object, list_name: str) -> dict:
    if (
        not isinstance(item, dict)
        or not isinstance(item.get("reference_id"), str)
        or not item["reference_id"]
    ):
        raise EnvelopeError(f"each {list_name} item needs a reference_id")
    _timestamp(item.get("timestamp"), f"{list_name}[].timestamp")
    locale = item.get("locale")
    if locale is not None and not _LOCALE.match(str(locale)):
        raise EnvelopeError("locale is an ISO 639-3 code of three lower-case letters (e.g. ind, eng)")
    return item


def correlation_id() -> str:
    """Unique per transaction (a timestamp is not: concurrent requests share a millisecond)."""
    return str(uuid.uuid4())


def overall(statuses: list[str]) -> str:
    """header.status of every action: `succ` when at least one item succeeded, else `rjct`."""
    return "succ" if "succ" in statuses else "rjct"


def answer_header(receiver: str, action: str, status: str, total: int, completed: int) -> dict:
    """`receiver` is the authenticated client, not the request's (unchecked) sender_id."""
    return {
        "version": "1.0.0",
        "message_id": str(uuid.uuid4()),
        "message_ts": now(),
        "action": action,
        "status": status,
        "total_count": total,
        "completed_count": completed,
        "sender_id": "dtsen",
        "receiver_id": receiver,
        "is_msg_encrypted": False,
    }


def rejected(reference_id: str, code: str, message: str) -> dict:
    return {
        "reference_id": reference_id,
        "timestamp": now(),
        "status": "rjct",
        "status_reason_code": code,
        "status_reason_message": message[:999],
    }


def http_error(code: str, message: str) -> dict:
    """The DCI HttpErrorResponse body."""
    return {"errors": [{"code": code, "message": message[:999]}]}


def check_request(body: object, action: str, list_name: str) -> tuple[dict, dict, list[dict]]:
    """(header, message, the message's items) of a request carrying a non-empty list `list_name`."""
    header, message = check_envelope(body, action)
    items = message.get(list_name)
    if not isinstance(items, list) or not items:
        raise EnvelopeError(f"message.{list_name} must be a non-empty list")
    return header, message, [check_item(i, list_name) for i in items]
