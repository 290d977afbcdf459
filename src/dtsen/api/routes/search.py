"""DCI sync search: pages of a program's recipients by predicate, or one person by NIK, within the
caller's scope; every answer carrying personal data is in the disclosure log before it leaves."""

import re

import psycopg
from fastapi import APIRouter, BackgroundTasks
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from dtsen.api import clients, dci, disclosure, search, transactions
from dtsen.api.callbacks import callback_of, deliver_now
from dtsen.api.deps import AppState, Body, Caller, State, fail, program_of, too_many, version_of
from dtsen.api.models import (
    AnswerHeader,
    PageInfo,
    Pagination,
    SearchAnswer,
    SearchAnswerEnvelope,
    SearchAnswerMessage,
    SearchCriteria,
    SearchData,
    SearchItem,
    SearchMessage,
    describe,
    parse_request,
)

router = APIRouter()
_NIK = re.compile(r"[0-9]{16}")


def _rejected(item: SearchItem, code: str, message: str) -> SearchAnswer:
    return SearchAnswer(
        reference_id=item.reference_id,
        timestamp=dci.now(),
        status="rjct",
        status_reason_code=code,
        status_reason_message=message[:999],
    )


def _page(app: State, criteria: SearchCriteria) -> tuple[int, int] | None:
    """(page size, page number); None if they are out of range, the size over the cap included:
    that item alone is rejected, as the docs say of every item."""
    cap = app.cfg.api_max_page_size
    paging = criteria.pagination or {}
    try:
        given = Pagination.model_validate(paging)
        size = cap if given.page_size is None else given.page_size
        number = given.page_number
    except ValidationError:
        size = number = 0
    return (size, number) if 1 <= size <= cap and number >= 1 else None


def _within(app: State, query: list, predicates: dict) -> None:
    """No list of the query longer than DTSEN_API_MAX_LIST_LENGTH (expressions, `in` values)."""
    cap = app.cfg.api_max_list_length
    values = [v for given in predicates.values() for _, v in given if isinstance(v, list)]
    if len(query) > cap or any(len(v) > cap for v in values):
        raise search.SearchError(
            "rjct.search_criteria.invalid", f"a query's lists hold at most {cap} entries"
        )


def _answer_item(
    app: State,
    conn: psycopg.Connection,
    client: clients.Client,
    item: SearchItem,
    audit: list,
    pinned: int | None,
) -> SearchAnswer:
    if not isinstance(item.search_criteria, dict):
        return _rejected(item, "rjct.search_criteria.invalid", "search_criteria is required")
    try:
        criteria = SearchCriteria.model_validate(item.search_criteria)
    except ValidationError as exc:
        return _rejected(item, "rjct.search_criteria.invalid", describe(exc, "search_criteria.")[1])
    paged = _page(app, criteria)
    if paged is None:
        return _rejected(
            item,
            "rjct.pagination.invalid",
            f"page_size is 1 to {app.cfg.api_max_page_size} and page_number starts at 1",
        )
    size, number = paged
    try:
        if criteria.query_type == "predicate":
            predicates = search.parse_predicate(criteria.query)
            _within(app, criteria.query, predicates)
            named = search.single(predicates, "version")
            version = version_of(conn, named) if named is not None or pinned is None else pinned
            program = program_of(app, client, search.single(predicates, "program"))
            asked = search.Search(version, program, **search.filters(predicates))
            found = search.page(conn, asked, number, size, client.fields)
            records, total, niks = found.rows, found.total, list(found.niks)
            # the parsed query, not the client's JSON: the log is append-only, so nothing of the
            # client's own (extra keys, long strings) may grow it
            logged = {
                "query_type": "predicate",
                "query": asked.logged(),
                "page_number": number,
                "page_size": size,
            }
        elif criteria.query_type == "idtype-value":
            query = criteria.query if isinstance(criteria.query, dict) else {}
            nik = query.get("value")
            # 16 ASCII digits, as a string: str.isdigit() takes "940701650387000²", whose int() fails
            # with the digits in its message
            if not (query.get("type") == "NIK" and isinstance(nik, str) and _NIK.fullmatch(nik)):
                raise search.SearchError(
                    "rjct.search_criteria.invalid",
                    'idtype-value takes {"type": "NIK", "value": "<16 digits>"}',
                )
            version = pinned if pinned is not None else version_of(conn, None)
            records = search.person(conn, version, client.programs, int(nik), client.fields)
            niks = [r.pop("_nik") for r in records]
            total, program = len(records), ",".join(sorted({r["program"] for r in records}))
            logged = {
                "query_type": "idtype-value",
                "query": {"type": "NIK", "value_key": disclosure.person_key(nik, app.key).hex()},
            }
        else:
            raise search.SearchError(
                "rjct.search_criteria.invalid", "query_type is predicate or idtype-value"
            )
    except search.SearchError as exc:
        return _rejected(item, exc.code, str(exc))
    if records:
        audit.append((logged | {"reference_id": item.reference_id}, version, program, niks))
    return SearchAnswer(
        reference_id=item.reference_id,
        timestamp=dci.now(),
        status="succ",
        data=SearchData(
            reg_type=dci.REGISTRY_TYPE,
            reg_record_type=dci.RECORD_TYPE,
            reg_records=records,
            dtsen_version=version,
        ),
        pagination=PageInfo(page_size=size, page_number=number, total_count=total),
        locale=item.locale or "ind",
    )


def answer_envelope(
    app: State,
    conn: psycopg.Connection,
    client: clients.Client,
    message: SearchMessage,
    pinned: int | None = None,
    correlation_id: str | None = None,
) -> dict:
    """The on-search envelope of a search message, every answer carrying personal data logged first.
    `pinned`: the version of items whose query names none (an asynchronous search's, fixed when it was
    received); None: the current one."""
    audit: list = []
    answers = [_answer_item(app, conn, client, item, audit, pinned) for item in message.search_request]
    for logged, version, program, niks in audit:
        # every person whose record went out, whichever of their fields the scope gives
        disclosure.record_search(
            conn, client.client_id, logged, version, program, niks, app.key, client.fields
        )
    envelope = SearchAnswerEnvelope(
        header=AnswerHeader(
            **dci.answer_header(
                client.client_id,
                "on-search",
                dci.overall([a.status for a in answers]),
                len(answers),
                len(answers),
            )
        ),
        message=SearchAnswerMessage(
            transaction_id=message.transaction_id,
            correlation_id=correlation_id or dci.correlation_id(),
            search_response=answers,
        ),
    )
    return envelope.body()


def _answer(app: State, client: clients.Client, message: SearchMessage) -> JSONResponse:
    with app.pool.connection() as conn:
        return JSONResponse(answer_envelope(app, conn, client, message))


def _within_rate(app: State, client: clients.Client, message: SearchMessage) -> None:
    """Each item is a page, so each counts against the client's rate (the request itself took one)."""
    if more := len(message.search_request) - 1:
        if len(message.search_request) > client.rate_per_minute:
            raise fail(
                400, "err.request.bad", f"this client may ask for {client.rate_per_minute} pages a minute"
            )
        if wait := app.limits.take(f"client:{client.client_id}", client.rate_per_minute, more):
            raise too_many(wait)


@router.post("/registry/sync/search")
async def sync_search(client: Caller, body: Body, app: AppState):
    try:
        header, message = parse_request(body, "search", app.cfg.api_max_items, app.cfg.api_max_list_length)
    except dci.EnvelopeError as exc:
        raise fail(400, exc.code, str(exc)) from exc
    _within_rate(app, client, message)
    # the warehouse is read on a worker thread: on the event loop, one slow page would hold up
    # every other request of this process
    return await run_in_threadpool(_answer, app, client, message)


def _take_search(app: State, client: clients.Client, message: SearchMessage, callback: str) -> str:
    with app.pool.connection() as conn:
        version = version_of(conn, None)  # the answer is of the version current now, whenever it is sent
        items = [item.model_dump(mode="json") for item in message.search_request]
        return transactions.open_search(
            conn, client.client_id, message.transaction_id, items, version, callback, app.key
        )


@router.post("/registry/search")
async def async_search(client: Caller, body: Body, app: AppState, background: BackgroundTasks):
    """DCI asynchronous search: an ACK with the transaction's correlation_id now; the on-search envelope
    is POSTed to header.sender_uri (the callback rules apply) when it is ready, retried if it does not
    arrive, and `txn/status` tells where it stands."""
    try:
        header, message = parse_request(body, "search", app.cfg.api_max_items, app.cfg.api_max_list_length)
    except dci.EnvelopeError as exc:
        raise fail(400, exc.code, str(exc)) from exc
    callback = await callback_of(header)
    _within_rate(app, client, message)
    correlation = await run_in_threadpool(_take_search, app, client, message, callback)
    background.add_task(deliver_now, app, correlation)
    return transactions.ack(correlation)
