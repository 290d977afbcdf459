"""DCI `txn/status`: where one of the client's own transactions stands (an asynchronous search not
answered yet is `pdng`), answered at once (`/registry/sync/txn/status`) or, after an ACK, POSTed to
header.sender_uri as `txn-on-status` (`/registry/txn/status`)."""

from fastapi import APIRouter, BackgroundTasks
from starlette.concurrency import run_in_threadpool

from dtsen.api import clients, dci, transactions
from dtsen.api.callbacks import callback_of, deliver_now
from dtsen.api.deps import AppState, Body, Caller, State, fail
from dtsen.api.models import TxnStatusMessage, parse_request

router = APIRouter()


def _status_envelope(app: State, client: clients.Client, message: TxnStatusMessage) -> dict:
    asked = message.txnstatus_request
    with app.pool.connection() as conn:
        found = transactions.find(
            conn, client.client_id, asked.attribute_type, asked.attribute_value, asked.txn_type
        )
    header = dci.answer_header(client.client_id, "txn-on-status", "succ" if found else "rjct", 1, 1)
    if found is None:
        header |= {
            "status_reason_code": "rjct.reference_id.invalid",
            "status_reason_message": "this client has no such transaction",
        }
    return {
        "signature": "",
        "header": header,
        "message": {
            "transaction_id": message.transaction_id,
            "correlation_id": dci.correlation_id(),
            "txnstatus_response": {
                "txn_type": found[1] if found else asked.txn_type,
                "txn_status": transactions.txn_status(found) if found else None,
            },
        },
    }


def _parsed(app: State, body: object) -> tuple:
    try:
        return parse_request(body, "txn-status", app.cfg.api_max_items, app.cfg.api_max_list_length)
    except dci.EnvelopeError as exc:
        raise fail(400, exc.code, str(exc)) from exc


@router.post("/registry/sync/txn/status")
async def sync_txn_status(client: Caller, body: Body, app: AppState):
    _header, message = _parsed(app, body)
    return await run_in_threadpool(_status_envelope, app, client, message)


def _record(app: State, client: clients.Client, envelope: dict, reference: str, callback: str) -> str:
    message = envelope["message"]
    with app.pool.connection() as conn:
        return transactions.record_answered(
            conn,
            client.client_id,
            "txn-status",
            message["transaction_id"],
            [reference],
            callback,
            envelope["header"]["status"],
            message,
        )


@router.post("/registry/txn/status")
async def txn_status(client: Caller, body: Body, app: AppState, background: BackgroundTasks):
    header, message = _parsed(app, body)
    callback = await callback_of(header)
    envelope = await run_in_threadpool(_status_envelope, app, client, message)
    reference = message.txnstatus_request.reference_id
    correlation = await run_in_threadpool(_record, app, client, envelope, reference, callback)
    background.add_task(deliver_now, app, correlation)
    return transactions.ack(correlation)
