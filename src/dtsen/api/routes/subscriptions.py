"""DCI subscribe and unsubscribe: callbacks to the client's own URL when a version of one of its
programs is published (dtsen.api.subscriptions)."""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from dtsen.api import clients, dci, subscriptions
from dtsen.api.deps import AppState, Body, Caller, State, fail, program_of
from dtsen.api.models import SubscribeItem, parse_request
from dtsen.errors import DataError

router = APIRouter()


def _subscribe_items(app: State, client: clients.Client, items: list[SubscribeItem], callback: str) -> list:
    answers = []
    with app.pool.connection() as conn:
        for item in items:
            criteria = item.subscribe_criteria if isinstance(item.subscribe_criteria, dict) else {}
            if criteria.get("reg_event_type") != dci.VERSION_EVENT:
                answers.append(
                    dci.rejected(
                        item.reference_id,
                        "rjct.notify_types.invalid",
                        f"reg_event_type is {dci.VERSION_EVENT}",
                    )
                )
                continue
            wanted = (
                (criteria.get("filter") or {}).get("program")
                if isinstance(criteria.get("filter"), dict)
                else None
            )
            programs = [program_of(app, client, wanted)] if wanted else list(client.programs)
            made = subscriptions.subscribe(conn, client.client_id, programs, callback)
            answers.append(
                {
                    "reference_id": item.reference_id,
                    "timestamp": dci.now(),
                    "status": "succ",
                    "subscriptions": [
                        {
                            "code": m.code,
                            "status": "subscribe",
                            "timestamp": dci.now(),
                            "reg_type": dci.REGISTRY_TYPE,
                            "reg_event_type": dci.VERSION_EVENT,
                            "notify_record_type": m.program,
                            "secret": subscriptions.signing_secret(m).decode(),  # not the disclosure key's
                        }
                        for m in made
                    ],
                }
            )
    return answers


@router.post("/registry/subscribe")
async def subscribe(client: Caller, body: Body, app: AppState):
    """DCI subscribe, answered synchronously (a deviation: DCI acks, then calls back on-subscribe):
    each item subscribes header.sender_uri to `dtsen:VersionPublished` of the client's programs."""
    try:
        header, message = parse_request(body, "subscribe", app.cfg.api_max_items, app.cfg.api_max_list_length)
        # the callback rules (dtsen.notify.egress); it resolves the host, so off the event loop
        callback = await run_in_threadpool(subscriptions.check_callback, str(header.sender_uri or ""))
    except (dci.EnvelopeError, DataError) as exc:
        raise fail(400, getattr(exc, "code", "err.sender_uri.invalid"), str(exc)) from exc
    try:
        answers = await run_in_threadpool(_subscribe_items, app, client, message.subscribe_request, callback)
    except subscriptions.SubscriptionLimit as exc:  # nothing of the request was subscribed
        raise fail(403, "err.subscription.limit", str(exc)) from exc
    except subscriptions.NoSigningKey as exc:  # no secret to hand out: DTSEN_CALLBACK_SIGNING_KEY
        raise fail(503, "err.service.unavailable", str(exc)) from exc
    return {
        "signature": "",
        "header": dci.answer_header(
            client.client_id,
            "on-subscribe",
            dci.overall([a["status"] for a in answers]),
            len(answers),
            len(answers),
        ),
        "message": {
            "transaction_id": message.transaction_id,
            "correlation_id": dci.correlation_id(),
            "subscribe_response": answers,
        },
    }


def _unsubscribe(app: State, client: clients.Client, codes: list[str]) -> dict:
    with app.pool.connection() as conn:
        return subscriptions.unsubscribe(conn, client.client_id, codes)


@router.post("/registry/unsubscribe")
async def unsubscribe(client: Caller, body: Body, app: AppState):
    try:
        header, message = parse_request(
            body, "unsubscribe", app.cfg.api_max_items, app.cfg.api_max_list_length
        )
    except dci.EnvelopeError as exc:
        raise fail(400, exc.code, str(exc)) from exc
    ended = await run_in_threadpool(_unsubscribe, app, client, message.subscription_codes)
    known = all(v != "unknown" for v in ended.values())
    # each code is an item: succ when at least one was ended, as in search and subscribe
    status = dci.overall(["rjct" if v == "unknown" else "succ" for v in ended.values()])
    return {
        "signature": "",
        "header": dci.answer_header(client.client_id, "on-unsubscribe", status, len(ended), len(ended)),
        "message": {
            "transaction_id": message.transaction_id,
            "correlation_id": dci.correlation_id(),
            "timestamp": dci.now(),
            "status": status,
            **({} if known else {"status_reason_code": "rjct.subscription_code.invalid"}),
            "subscription_status": [
                {"code": c, "status": "unsubscribe"} for c, state in ended.items() if state != "unknown"
            ],
        },
    }
