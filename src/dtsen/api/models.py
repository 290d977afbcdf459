"""The DCI envelope as pydantic models: the request's header and messages (search, subscribe,
unsubscribe), a search item's criteria, and the answers. A request that does not fit its model is a
400 whose message names the field and what was wrong, never the value that was sent."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticCustomError

from dtsen.api.dci import EnvelopeError


def _aware(value: object) -> str:
    """An ISO 8601 date-time with a time zone, kept as sent."""
    text = str(value or "")
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise PydanticCustomError("timestamp", "must be an ISO 8601 date-time with a time zone") from exc
    if parsed.tzinfo is None:
        raise PydanticCustomError("timestamp", "must carry a time zone (e.g. 2026-04-01T08:00:00+07:00)")
    return text


Timestamp = Annotated[str, BeforeValidator(_aware)]


def _present(value: object) -> object:
    if value in (None, ""):
        raise PydanticCustomError("missing", "is missing")
    return value


Present = BeforeValidator(_present)


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Header(_Model):
    """A request's header (DCI MsgHeader)."""

    version: Any = "1.0.0"
    message_id: Annotated[Any, Present]
    message_ts: Annotated[Timestamp, Present]
    action: Annotated[Any, Present]
    sender_id: Annotated[Any, Present]
    sender_uri: Any = None
    total_count: Annotated[StrictInt, Present]
    is_msg_encrypted: Any = False

    @field_validator("version")
    @classmethod
    def _supported(cls, value: object) -> object:
        if str(value) != "1.0.0":
            raise PydanticCustomError(
                "err.version.not_supported", "only version 1.0.0 of the DCI messages is supported"
            )
        return value

    @field_validator("is_msg_encrypted")
    @classmethod
    def _plain(cls, value: object) -> object:
        if value:
            raise PydanticCustomError(
                "err.encryption.invalid", "encrypted messages are not supported (the transport is TLS)"
            )
        return value


# An identifier the client chooses that is kept (the disclosure log keeps reference_id) or echoed:
# bounded, and of characters that cannot break a log line or hide as look-alikes (ASCII only).
_IDENTIFIER = re.compile(r"[A-Za-z0-9._:/+=@#-]{1,99}")


def _identifier(value: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise PydanticCustomError("identifier", "must be 1-99 characters of A-Z a-z 0-9 . _ : / + = @ # -")
    return value


Identifier = Annotated[StrictStr, AfterValidator(_identifier)]


class Item(_Model):
    """What every item of a request's list carries."""

    reference_id: Identifier
    timestamp: Timestamp = ""
    locale: Annotated[str, Field(pattern=r"^[a-z]{3}$")] | None = None


class SearchItem(Item):
    search_criteria: Any = None  # checked per item (SearchCriteria): a bad one rejects its item only


class SubscribeItem(Item):
    subscribe_criteria: Any = None


TransactionId = Identifier


class SearchMessage(_Model):
    transaction_id: TransactionId
    search_request: Annotated[list[SearchItem], Field(min_length=1)]


class SubscribeMessage(_Model):
    transaction_id: TransactionId
    subscribe_request: Annotated[list[SubscribeItem], Field(min_length=1)]


class UnsubscribeMessage(_Model):
    transaction_id: TransactionId
    subscription_codes: Annotated[list[Annotated[StrictStr, Field(max_length=99)]], Field(min_length=1)]


class TxnStatusRequest(_Model):
    """What `txn/status` asks about: the client's own transaction, by its transaction_id, the
    correlation_id our ACK gave, or one of its items' reference_ids."""

    reference_id: Identifier
    txn_type: Literal["search", "subscribe", "unsubscribe"] | None = None
    attribute_type: Literal["transaction_id", "correlation_id", "reference_id_list"]
    attribute_value: Any = None
    locale: Annotated[str, Field(pattern=r"^[a-z]{3}$")] | None = None

    @field_validator("attribute_value")
    @classmethod
    def _given(cls, value: object, info) -> object:
        kind = info.data.get("attribute_type")
        if kind == "reference_id_list":
            if not (
                isinstance(value, list)
                and value
                and all(isinstance(v, str) and _IDENTIFIER.fullmatch(v) for v in value)
            ):
                raise PydanticCustomError("value", "a reference_id_list is a non-empty list of reference ids")
        elif kind == "correlation_id":
            if not (isinstance(value, str) and _UUID.fullmatch(value)):
                raise PydanticCustomError("value", "a correlation_id is the UUID the ACK gave")
        elif not (isinstance(value, str) and _IDENTIFIER.fullmatch(value)):
            raise PydanticCustomError(
                "value", "a transaction_id is 1-99 characters of A-Z a-z 0-9 . _ : / + = @ # -"
            )
        return value


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class TxnStatusMessage(_Model):
    transaction_id: TransactionId
    txnstatus_request: TxnStatusRequest


class Pagination(_Model):
    # strict: "10", 1.5 or true are no page size (and a string of Unicode digits is not one either)
    page_size: StrictInt | None = None  # None: the server's largest page
    page_number: StrictInt = 1


class SearchCriteria(_Model):
    query_type: Any = None
    query: Any = None
    pagination: Any = None


def _where(error: dict) -> str:
    return ".".join(str(p) for p in error["loc"]) or "the body"


def describe(exc: ValidationError, prefix: str = "") -> tuple[str, str]:
    """(DCI code, message) of the first error: where and what, never the value sent."""
    error = exc.errors(include_input=False, include_url=False)[0]
    code = error["type"] if str(error["type"]).startswith("err.") else "err.request.bad"
    where = f"{prefix}{_where(error)}"
    return code, f"{where}: {error['msg']}"


_MESSAGES = {
    "search": SearchMessage,
    "subscribe": SubscribeMessage,
    "unsubscribe": UnsubscribeMessage,
    "txn-status": TxnStatusMessage,
}


_LISTS = {"search": "search_request", "subscribe": "subscribe_request", "unsubscribe": "subscription_codes"}


def parse_request(
    body: object, action: str, max_items: int = 10, max_list: int = 100
) -> tuple[Header, BaseModel]:
    """(header, message) of a request whose header says `action`; EnvelopeError otherwise, also for
    more than `max_items` items (`max_list` subscription codes) in its list."""
    if not isinstance(body, dict):
        raise EnvelopeError("the body must be a JSON object with header and message")
    if not isinstance(body.get("header"), dict) or not isinstance(body.get("message"), dict):
        raise EnvelopeError("the envelope needs a header object and a message object")
    listed = body["message"].get(_LISTS.get(action, ""))
    if action == "txn-status" and isinstance(body["message"].get("txnstatus_request"), dict):
        listed = body["message"]["txnstatus_request"].get("attribute_value")
    cap = max_items if action in ("search", "subscribe") else max_list
    if isinstance(listed, list) and len(listed) > cap:  # counted before a single item is looked at
        raise EnvelopeError(
            f"message.{_LISTS.get(action, 'txnstatus_request.attribute_value')} may hold at most {cap} items"
        )
    try:
        header = Header.model_validate(body["header"])
    except ValidationError as exc:
        raise EnvelopeError(*reversed(describe(exc, "header."))) from None
    if header.action != action:
        raise EnvelopeError(f"header.action must be {action!r} here")
    try:
        message = _MESSAGES[action].model_validate(body["message"])
    except ValidationError as exc:
        raise EnvelopeError(*reversed(describe(exc, "message."))) from None
    return header, message


# answers


class AnswerHeader(BaseModel):
    version: str = "1.0.0"
    message_id: str
    message_ts: str
    action: str
    status: Literal["succ", "rjct", "pdng"]
    total_count: int
    completed_count: int
    sender_id: str = "dtsen"
    receiver_id: Any = None
    is_msg_encrypted: StrictBool = False


class SearchData(BaseModel):
    version: str = "1.0.0"
    reg_type: str
    reg_record_type: str
    reg_records: list[dict]
    dtsen_version: int


class PageInfo(BaseModel):
    page_size: int
    page_number: int
    total_count: int


class SearchAnswer(BaseModel):
    """One search_response item: its records, or why it was rejected."""

    reference_id: str
    timestamp: str
    status: Literal["succ", "rjct"]
    status_reason_code: str | None = None
    status_reason_message: str | None = None
    data: SearchData | None = None
    pagination: PageInfo | None = None
    locale: str | None = None


class SearchAnswerMessage(BaseModel):
    transaction_id: str
    correlation_id: str
    search_response: list[SearchAnswer]


class SearchAnswerEnvelope(BaseModel):
    signature: str = ""
    header: AnswerHeader
    message: SearchAnswerMessage

    def body(self) -> dict:
        return self.model_dump(exclude_none=True)
