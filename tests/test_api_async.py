"""The registry API's asynchronous DCI transactions (issue 24, the DCI surface): `/registry/search`,
`/registry/subscribe`, `/registry/unsubscribe` and `/registry/txn/status` answer with an ACK, then POST
their on-* envelope to header.sender_uri (the callback rules apply), retried in the background until
delivered or given up; `txn/status` tells where a transaction stands, to its own client only; and
what the API keeps of a transaction holds no personal data in the clear.

In process (TestClient) against a real warehouse, the callbacks to a real HTTP server on loopback,
allowed by DTSEN_CALLBACK_ALLOWLIST; one end-to-end test against a real `dtsen api` process."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.factories import (
    api_bearer,
    dci_envelope,
    dci_item,
    dci_predicate,
    published_sample,
    running_registry_api,
)

KEY = "test-disclosure-key"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Receiver:
    """A client's callback endpoint: a real HTTP server that keeps each POSTed JSON body, answering
    with `answers` in turn (then 200)."""

    def __init__(self, *answers: int | tuple[int, str]) -> None:
        self.calls: list[dict] = []
        self.answers = list(answers)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append(json.loads(body))
                answer = outer.answers.pop(0) if outer.answers else 200
                self.send_response(answer[0] if isinstance(answer, tuple) else answer)
                if isinstance(answer, tuple):  # (status, Location)
                    self.send_header("Location", answer[1])
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/dci/callback"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.calls) >= count, f"{len(self.calls)} callbacks arrived, {count} expected"
        return self.calls


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    version = published_sample(conn, root)
    programs = {"pbi_jk", "pkh"}
    with conn.transaction():
        secrets = {
            "bpjs": create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 6000, programs),
            "other": create_client(conn, "other", "Other", ["pkh"], ["nik"], 6000, programs),
        }
    return {"root": root, "secrets": secrets, "version": version, "conn": conn}


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*answers: int | tuple[int, str]) -> Receiver:
        made.append(Receiver(*answers))
        return made[-1]

    yield make
    for r in made:
        r.server.shutdown()


@pytest.fixture
def http(published, monkeypatch):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    monkeypatch.setenv("DTSEN_CALLBACK_SIGNING_KEY", "test-callback-signing-key")
    monkeypatch.setenv("DTSEN_CALLBACK_ALLOWLIST", "127.0.0.1")
    monkeypatch.setenv("DTSEN_API_CALLBACK_RETRY_SECONDS", "0.2")
    monkeypatch.setenv("DTSEN_API_CALLBACK_ATTEMPTS", "3")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def _sql(published, query: str, *params) -> list[tuple]:
    conn = published["conn"]
    with conn.transaction():
        return conn.execute(query, params).fetchall()


def _async(envelope: dict, callback: str | None) -> dict:
    envelope["header"]["sender_uri"] = callback
    return envelope


def _ack(answer: httpx.Response) -> str:
    assert answer.status_code == 200, answer.text
    message = answer.json()["message"]
    assert set(message) == {"ack_status", "timestamp", "error", "correlation_id"}
    assert message["ack_status"] == "ACK" and message["error"] == {}
    assert UUID.fullmatch(message["correlation_id"])
    return message["correlation_id"]


def _status(http, auth, attribute: str, value, txn_type: str | None = None) -> dict:
    envelope = dci_envelope(action="txn-status", transaction="status-1")
    del envelope["message"]["txn-status_request"]
    envelope["message"]["txnstatus_request"] = {
        "reference_id": "st-1",
        "attribute_type": attribute,
        "attribute_value": value,
        **({"txn_type": txn_type} if txn_type else {}),
    }
    answer = http.post("/registry/sync/txn/status", headers=auth, json=envelope)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_async_search_is_acked_and_its_on_search_posted_to_the_sender_uri(http, published, receiver):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    callback = receiver()
    item = dci_item(dci_predicate(("desil", "le", 3)), "r-1")
    correlation = _ack(
        http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
    )
    (call,) = callback.wait(1)
    assert call["header"]["action"] == "on-search" and call["header"]["receiver_id"] == "bpjs"
    assert call["message"]["correlation_id"] == correlation
    assert call["message"]["transaction_id"] == "txn-1"
    sync = http.post("/registry/sync/search", headers=auth, json=dci_envelope(item)).json()
    sent = call["message"]["search_response"][0]
    assert sent["status"] == "succ"
    assert sent["data"]["reg_records"] == sync["message"]["search_response"][0]["data"]["reg_records"]
    # what went out is in the disclosure log, as for a sync search
    assert _sql(published, "SELECT count(*) FROM api.disclosure WHERE client_id = 'bpjs'")[0][0] >= 2
    assert _sql(
        published, "SELECT delivery, attempts, status FROM api.txn WHERE correlation_id = %s", correlation
    ) == [("delivered", 1, "succ")]


def test_an_undelivered_answer_is_posted_again_until_it_arrives(http, published, receiver):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    callback = receiver(503, 500)  # two failures, then 200
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-2")
    correlation = _ack(
        http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
    )
    calls = callback.wait(3)
    assert [c["message"]["correlation_id"] for c in calls] == [correlation] * 3
    # the same records each time: the answer comes from the version pinned when the search came in
    assert (
        calls[0]["message"]["search_response"][0]["data"] == calls[2]["message"]["search_response"][0]["data"]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        (row,) = _sql(
            published, "SELECT delivery, attempts FROM api.txn WHERE correlation_id = %s", correlation
        )
        if row[0] == "delivered":
            break
        time.sleep(0.1)
    assert row == ("delivered", 3)


def test_a_refused_callback_is_given_up_at_once(http, published, receiver):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    callback = receiver(400)
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-3")
    correlation = _ack(
        http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
    )
    callback.wait(1)
    time.sleep(1)  # five retry periods: none comes
    assert len(callback.calls) == 1
    assert _sql(
        published,
        "SELECT delivery, attempts, last_error, sealed_request IS NULL FROM api.txn WHERE correlation_id = %s",
        correlation,
    ) == [("failed", 1, "HTTP 400", True)]


def test_an_async_request_needs_an_allowed_callback(http, published):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-4")
    for callback in (
        None,
        "http://10.0.0.7/dci",
        "https://169.254.169.254/latest",
        "https://u:p@example.org/",
    ):
        answer = http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback))
        assert answer.status_code == 400, callback
        assert answer.json()["errors"][0]["code"] == "err.sender_uri.invalid"
    assert _sql(published, "SELECT count(*) FROM api.txn WHERE reference_ids = '{r-4}'") == [(0,)]


def test_txn_status_tells_a_search_pending_then_answered_and_never_another_clients(http, published, receiver):
    from dtsen.api import transactions

    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    conn = published["conn"]
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-5")
    # a search taken but not answered yet (its delivery not due: the API is busy elsewhere)
    with conn.transaction():
        pending = transactions.open_search(
            conn, "bpjs", "txn-pending", [item], published["version"], "http://127.0.0.1:9/x", KEY.encode()
        )
        conn.execute(
            "UPDATE api.txn SET next_attempt_at = now() + interval '1 hour' WHERE correlation_id = %s",
            (pending,),
        )
    body = _status(http, auth, "correlation_id", pending)
    assert body["header"]["action"] == "txn-on-status" and body["header"]["status"] == "succ"
    answer = body["message"]["txnstatus_response"]
    assert answer["txn_type"] == "search"
    assert answer["txn_status"]["correlation_id"] == pending
    assert [(i["reference_id"], i["status"]) for i in answer["txn_status"]["search_response"]] == [
        ("r-5", "pdng")
    ]

    callback = receiver()
    done = _ack(
        http.post(
            "/registry/search",
            headers=auth,
            json=_async(dci_envelope(item, transaction="txn-done"), callback.url),
        )
    )
    callback.wait(1)
    for attribute, value in (
        ("transaction_id", "txn-done"),
        ("correlation_id", done),
        ("reference_id_list", ["r-5"]),
    ):
        status = _status(http, auth, attribute, value, "search")["message"]["txnstatus_response"][
            "txn_status"
        ]
        assert status["correlation_id"] == done, attribute
        (answered,) = status["search_response"]
        assert answered["status"] == "succ" and answered["pagination"]["total_count"] > 0
        assert "reg_records" not in answered["data"]  # a status is no second disclosure

    other = api_bearer(http, "other", published["secrets"]["other"])
    for attribute, value in (("transaction_id", "txn-done"), ("correlation_id", done)):
        body = _status(http, other, attribute, value)
        assert body["header"]["status"] == "rjct"
        assert body["message"]["txnstatus_response"]["txn_status"] is None


def test_async_txn_status_is_acked_and_posted_as_txn_on_status(http, published, receiver):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    first = receiver()
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-6")
    searched = _ack(
        http.post(
            "/registry/search", headers=auth, json=_async(dci_envelope(item, transaction="t-6"), first.url)
        )
    )
    first.wait(1)
    envelope = dci_envelope(action="txn-status", transaction="status-6")
    del envelope["message"]["txn-status_request"]
    envelope["message"]["txnstatus_request"] = {
        "reference_id": "st-6",
        "txn_type": "search",
        "attribute_type": "transaction_id",
        "attribute_value": "t-6",
    }
    status_callback = receiver()
    correlation = _ack(
        http.post("/registry/txn/status", headers=auth, json=_async(envelope, status_callback.url))
    )
    (call,) = status_callback.wait(1)
    assert call["header"]["action"] == "txn-on-status"
    assert call["message"]["correlation_id"] == correlation
    assert call["message"]["txnstatus_response"]["txn_status"]["correlation_id"] == searched


def test_subscribe_and_unsubscribe_are_acked_and_their_answers_called_back(http, published, receiver):
    from dtsen.notify.webhook import sign, verify

    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    callback = receiver()
    envelope = dci_envelope(action="subscribe", transaction="sub-1")
    envelope["message"]["subscribe_request"] = [
        {
            "reference_id": "s-1",
            "timestamp": envelope["header"]["message_ts"],
            "subscribe_criteria": {"reg_event_type": "dtsen:VersionPublished"},
        }
    ]
    correlation = _ack(http.post("/registry/subscribe", headers=auth, json=_async(envelope, callback.url)))
    (call,) = callback.wait(1)
    assert call["header"]["action"] == "on-subscribe" and call["message"]["correlation_id"] == correlation
    (made,) = call["message"]["subscribe_response"][0]["subscriptions"]
    assert made["notify_record_type"] == "pbi_jk" and made["secret"]
    # the secret handed out is the one the version events are signed with
    body, stamp = b'{"x":1}', "1"
    assert verify(made["secret"].encode(), stamp, body, sign(made["secret"].encode(), stamp, body))
    assert _sql(
        published,
        "SELECT callback_url FROM api.subscription WHERE code = %s AND cancelled_at IS NULL",
        made["code"],
    ) == [(callback.url,)]
    # nothing of the secret is kept with the transaction
    (kept,) = _sql(published, "SELECT answer::text FROM api.txn WHERE correlation_id = %s", correlation)
    assert made["secret"] not in kept[0] and made["code"] in kept[0]

    ending = dci_envelope(action="unsubscribe", transaction="unsub-1")
    ending["message"]["subscription_codes"] = [made["code"], "no-such-code"]
    ended = _ack(http.post("/registry/unsubscribe", headers=auth, json=_async(ending, callback.url)))
    calls = callback.wait(2)
    assert calls[1]["header"]["action"] == "on-unsubscribe" and calls[1]["message"]["correlation_id"] == ended
    assert calls[1]["message"]["subscription_status"] == [{"code": made["code"], "status": "unsubscribe"}]
    assert _sql(
        published, "SELECT cancelled_at IS NOT NULL FROM api.subscription WHERE code = %s", made["code"]
    ) == [(True,)]


def test_a_nik_asked_asynchronously_is_kept_sealed_and_dropped_once_answered(http, published, receiver):
    (nik,) = _sql(
        published,
        "SELECT nik FROM publish.recipient WHERE version = %s AND program = 'pbi_jk' LIMIT 1",
        published["version"],
    )[0]
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    callback = receiver(500)  # the first attempt fails: the request stays, sealed, for the retry
    item = {
        "reference_id": "nik-1",
        "timestamp": "2026-12-03T10:00:00+07:00",
        "search_criteria": {"query_type": "idtype-value", "query": {"type": "NIK", "value": f"{nik:016d}"}},
    }
    correlation = _ack(
        http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
    )
    callback.wait(1)
    (sealed,) = _sql(
        published, "SELECT sealed_request, answer::text FROM api.txn WHERE correlation_id = %s", correlation
    )
    assert sealed[0] is not None and f"{nik:016d}".encode() not in bytes(sealed[0])
    assert f"{nik:016d}" not in sealed[1] and str(nik) not in sealed[1]
    calls = callback.wait(2)
    assert calls[1]["message"]["search_response"][0]["data"]["reg_records"][0]["nik"] in (nik, f"{nik:016d}")
    deadline = time.monotonic() + 10
    while _sql(
        published, "SELECT sealed_request IS NULL FROM api.txn WHERE correlation_id = %s", correlation
    ) != [(True,)]:
        assert time.monotonic() < deadline, "the sealed request outlived its delivery"
        time.sleep(0.1)


def test_a_revoked_clients_pending_answer_is_not_sent(http, published, receiver):
    from dtsen.api import transactions
    from dtsen.api.clients import create_client, revoke_client

    conn = published["conn"]
    with conn.transaction():
        create_client(conn, "gone", "Gone", ["pbi_jk"], ["nik"], 600, {"pbi_jk"})
    callback = receiver()
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-8")
    with conn.transaction():
        correlation = transactions.open_search(
            conn, "gone", "t-8", [item], published["version"], callback.url, KEY.encode()
        )
        revoke_client(conn, "gone")
    from dtsen.api.callbacks import deliver_now

    assert deliver_now(http.app.state.dtsen, correlation) == "failed"
    assert callback.calls == []
    assert _sql(published, "SELECT count(*) FROM api.disclosure WHERE client_id = 'gone'") == [(0,)]


def test_a_real_api_process_answers_an_async_search_by_callback(published, receiver, tmp_path):
    callback = receiver()
    env = os.environ | {
        "DTSEN_PUBLISH_ROOT": str(published["root"]),
        "DTSEN_API_DISCLOSURE_KEY": KEY,
        "DTSEN_API_SIGNING_KEY": "0ZDCb3Mab1HJaPyxXBAE0cKg8VZ2ko4W1/yaU+OTK9o=",
        "DTSEN_CALLBACK_ALLOWLIST": "127.0.0.1",
    }
    with running_registry_api(env, tmp_path / "api.log") as (base, _):
        with httpx.Client(base_url=base, timeout=60) as client:
            auth = api_bearer(client, "bpjs", published["secrets"]["bpjs"])
            item = dci_item(dci_predicate(("desil", "le", 3)), "real-1")
            correlation = _ack(
                client.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
            )
            (call,) = callback.wait(1)
    assert call["message"]["correlation_id"] == correlation
    assert call["message"]["search_response"][0]["data"]["reg_records"]


def test_a_callback_that_redirects_is_not_followed_and_given_up(http, published, receiver):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    inside = receiver()  # where the redirect points: an address the API must not be led to
    callback = receiver((307, inside.url), (302, inside.url))
    item = dci_item(dci_predicate(("desil", "le", 2)), "r-9")
    correlation = _ack(
        http.post("/registry/search", headers=auth, json=_async(dci_envelope(item), callback.url))
    )
    callback.wait(1)
    time.sleep(1)  # five retry periods
    assert len(callback.calls) == 1 and inside.calls == []
    assert _sql(
        published, "SELECT delivery, last_error FROM api.txn WHERE correlation_id = %s", correlation
    ) == [("failed", "HTTP 307")]


def test_a_client_cannot_end_or_subscribe_to_what_is_not_its_own(http, published, receiver):
    bpjs = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    other = api_bearer(http, "other", published["secrets"]["other"])
    envelope = dci_envelope(action="subscribe", transaction="sub-own")
    envelope["header"]["sender_uri"] = receiver().url
    envelope["message"]["subscribe_request"] = [
        {
            "reference_id": "s-own",
            "timestamp": envelope["header"]["message_ts"],
            "subscribe_criteria": {"reg_event_type": "dtsen:VersionPublished"},
        }
    ]
    made = http.post("/registry/sync/subscribe", headers=bpjs, json=envelope).json()
    (code,) = [s["code"] for s in made["message"]["subscribe_response"][0]["subscriptions"]]
    # another client names bpjs's code: not its own, so unknown to it, and the subscription lives on
    ending = dci_envelope(action="unsubscribe", transaction="unsub-other")
    ending["message"]["subscription_codes"] = [code]
    answer = http.post("/registry/sync/unsubscribe", headers=other, json=ending).json()
    assert answer["header"]["status"] == "rjct" and answer["message"]["subscription_status"] == []
    assert _sql(published, "SELECT cancelled_at IS NULL FROM api.subscription WHERE code = %s", code) == [
        (True,)
    ]
    # nor may it subscribe to a program outside its scope, by name
    envelope["message"]["subscribe_request"][0]["subscribe_criteria"]["filter"] = {"program": "pbi_jk"}
    refused = http.post("/registry/sync/subscribe", headers=other, json=envelope)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "err.request.forbidden"
    assert _sql(published, "SELECT count(*) FROM api.subscription WHERE client_id = 'other'") == [(0,)]


@pytest.mark.parametrize(
    "attribute, value",
    [
        ("kode_wilayah", "3674' OR '1'='1"),
        ("kode_wilayah", ["3674", "36'); DROP TABLE api.disclosure; --"]),
        ("desil", "1 OR 1=1"),
        ("version", "1; DELETE FROM api.client"),
        ("program", "pbi_jk' --"),
    ],
)
def test_sql_metacharacters_in_a_predicate_are_refused_or_bound(http, published, attribute, value):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    op = "in" if isinstance(value, list) else "eq"
    answer = http.post(
        "/registry/sync/search",
        headers=auth,
        json=dci_envelope(dci_item(dci_predicate((attribute, op, value)))),
    )
    # a 4xx, or the item rejected: never records, never a 500
    if answer.status_code == 200:
        (item,) = answer.json()["message"]["search_response"]
        assert item["status"] == "rjct", item
    else:
        assert 400 <= answer.status_code < 500, answer.text
    assert _sql(published, "SELECT count(*) FROM api.client WHERE client_id = 'bpjs'") == [(1,)]
    assert _sql(published, "SELECT to_regclass('api.disclosure') IS NOT NULL") == [(True,)]
