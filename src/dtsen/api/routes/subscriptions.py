"""DCI subscribe and unsubscribe: callbacks to the client's own URL when a version of one of its
programs is published (dtsen.api.subscriptions)."""

from fastapi import APIRouter, BackgroundTasks
from starlette.concurrency import run_in_threadpool

from dtsen.api import clients, dci, subscriptions, transactions
from dtsen.api.callbacks import callback_of, deliver_now
from dtsen.api.deps import AppState, Body, Caller, State, fail, program_of
from dtsen.api.models import SubscribeItem, parse_request

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


def _subscribe_envelope(app: State, client: clients.Client, header, message, callback: str) -> dict:
    """The on-subscribe envelope: the subscriptions made, each with its secret (HTTP errors: the
    client's subscription limit, no signing key; nothing of the request is subscribed then)."""
    try:
        answers = _subscribe_items(app, client, message.subscribe_request, callback)
    except subscriptions.SubscriptionLimit as exc:
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


def _parsed(app: State, body: object, action: str):
    try:
        return parse_request(body, action, app.cfg.api_max_items, app.cfg.api_max_list_length)
    except dci.EnvelopeError as exc:
        raise fail(400, exc.code, str(exc)) from exc


@router.post("/registry/sync/subscribe")
async def sync_subscribe(client: Caller, body: Body, app: AppState):
    """Subscribe, answered at once with the on-subscribe envelope (this service's extension: DCI's
    subscribe is asynchronous, /registry/subscribe): each item subscribes header.sender_uri to
    `dtsen:VersionPublished` of the client's programs."""
    header, message = _parsed(app, body, "subscribe")
    callback = await callback_of(header)
    return await run_in_threadpool(_subscribe_envelope, app, client, header, message, callback)


def _record(
    app: State, client: clients.Client, action: str, envelope: dict, references: list, callback: str
) -> str:
    """Keep a done transaction's answer (without secrets) for its callback and txn/status."""
    message = envelope["message"]
    with app.pool.connection() as conn:
        return transactions.record_answered(
            conn,
            client.client_id,
            action,
            message["transaction_id"],
            references,
            callback,
            envelope["header"]["status"],
            transactions.kept(action, message),
        )


@router.post("/registry/subscribe")
async def subscribe(client: Caller, body: Body, app: AppState, background: BackgroundTasks):
    """DCI subscribe: the subscriptions are made before the ACK; the on-subscribe envelope (codes and
    secrets) is POSTed to header.sender_uri, which is also where the version events go."""
    header, message = _parsed(app, body, "subscribe")
    callback = await callback_of(header)
    envelope = await run_in_threadpool(_subscribe_envelope, app, client, header, message, callback)
    references = [i.reference_id for i in message.subscribe_request]
    correlation = await run_in_threadpool(_record, app, client, "subscribe", envelope, references, callback)
    background.add_task(deliver_now, app, correlation)
    return transactions.ack(correlation)


def _unsubscribe_envelope(app: State, client: clients.Client, message) -> dict:
    with app.pool.connection() as conn:
        ended = subscriptions.unsubscribe(conn, client.client_id, message.subscription_codes)
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


@router.post("/registry/sync/unsubscribe")
async def sync_unsubscribe(client: Caller, body: Body, app: AppState):
    """Unsubscribe, answered at once with the on-unsubscribe envelope (this service's extension)."""
    header, message = _parsed(app, body, "unsubscribe")
    return await run_in_threadpool(_unsubscribe_envelope, app, client, message)


@router.post("/registry/unsubscribe")
async def unsubscribe(client: Caller, body: Body, app: AppState, background: BackgroundTasks):
    """DCI unsubscribe: the subscriptions end before the ACK; on-unsubscribe goes to header.sender_uri."""
    header, message = _parsed(app, body, "unsubscribe")
    callback = await callback_of(header)
    envelope = await run_in_threadpool(_unsubscribe_envelope, app, client, message)
    codes = list(message.subscription_codes)
    correlation = await run_in_threadpool(_record, app, client, "unsubscribe", envelope, codes, callback)
    background.add_task(deliver_now, app, correlation)
    return transactions.ack(correlation)
