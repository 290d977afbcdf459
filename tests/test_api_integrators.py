"""What an integrator sees of the registry API (issue 24, item 10), in process against a real
warehouse: an over-limit page_size rejects its own item only, correlation_id is unique per
transaction, receiver_id is the authenticated client, header.status follows the items the same way
in every action, and the webhook verifier takes the secret as the str the subscribe answer gives."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from tests.factories import api_bearer, dci_envelope, dci_item, dci_predicate, published_sample

KEY = "test-disclosure-key"


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    published_sample(conn, root)
    with conn.transaction():
        secret = create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 6000, {"pbi_jk", "pkh"})
    return {"root": root, "secret": secret}


@pytest.fixture
def http(published, monkeypatch):
    from dtsen.api import subscriptions
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    monkeypatch.setenv("DTSEN_CALLBACK_SIGNING_KEY", "test-callback-signing-key")
    # no public https receiver in a test: the callback rules have tests of their own
    monkeypatch.setattr(subscriptions, "check_callback", lambda url: url)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def _search(http, auth, *items):
    answer = http.post("/registry/sync/search", headers=auth, json=dci_envelope(*items))
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_an_over_limit_page_size_rejects_only_its_own_item(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    body = _search(
        http,
        auth,
        dci_item(dci_predicate(("desil", "le", 3)), "ok"),
        dci_item(dci_predicate(("desil", "le", 3), pagination={"page_size": 10**6, "page_number": 1}), "big"),
    )
    ok, big = body["message"]["search_response"]
    assert ok["reference_id"] == "ok" and ok["status"] == "succ" and ok["data"]["reg_records"]
    assert big["reference_id"] == "big" and big["status"] == "rjct"
    assert big["status_reason_code"] == "rjct.pagination.invalid"
    assert body["header"]["status"] == "succ"


def test_correlation_ids_are_unique_across_60_concurrent_searches(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    item = dci_item(dci_predicate(("desil", "le", 3)))
    with ThreadPoolExecutor(12) as pool:
        ids = list(pool.map(lambda _: _search(http, auth, item)["message"]["correlation_id"], range(60)))
    assert len(set(ids)) == 60


def test_receiver_id_is_the_authenticated_client_not_the_sender_id(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    body = _search(http, auth, dci_item(dci_predicate(("desil", "le", 3))))
    assert body["header"]["sender_id"] == "dtsen"
    assert body["header"]["receiver_id"] == "bpjs"  # the request said sender_id "test-client"


def _subscribe(http, auth, event: str) -> dict:
    envelope = dci_envelope(action="subscribe")
    envelope["header"]["sender_uri"] = "https://receiver.example/dtsen"
    envelope["message"]["subscribe_request"] = [
        {
            "reference_id": "s-1",
            "timestamp": envelope["header"]["message_ts"],
            "subscribe_criteria": {"reg_event_type": event},
        }
    ]
    answer = http.post("/registry/sync/subscribe", headers=auth, json=envelope)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _unsubscribe(http, auth, codes: list[str]) -> dict:
    envelope = dci_envelope(action="unsubscribe")
    envelope["message"]["subscription_codes"] = codes
    answer = http.post("/registry/sync/unsubscribe", headers=auth, json=envelope)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_header_status_follows_the_items_alike_in_every_action(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    # none answered: rjct, in search as in subscribe and unsubscribe
    bad = dci_predicate(("desil", "le", 3), pagination={"page_size": 0, "page_number": 1})
    assert _search(http, auth, dci_item(bad))["header"]["status"] == "rjct"
    refused = _subscribe(http, auth, "not-an-event")
    assert refused["message"]["subscribe_response"][0]["status"] == "rjct"
    assert refused["header"]["status"] == "rjct"
    assert _unsubscribe(http, auth, ["no-such-code"])["header"]["status"] == "rjct"
    # some answered: succ in each
    assert (
        _search(http, auth, dci_item(dci_predicate(("desil", "le", 3))), dci_item(bad, "r2"))["header"][
            "status"
        ]
        == "succ"
    )
    made = _subscribe(http, auth, "dtsen:VersionPublished")
    assert made["header"]["status"] == "succ" and made["header"]["receiver_id"] == "bpjs"
    code = made["message"]["subscribe_response"][0]["subscriptions"][0]["code"]
    ended = _unsubscribe(http, auth, [code, "no-such-code"])
    assert ended["header"]["status"] == "succ" and ended["header"]["receiver_id"] == "bpjs"
    assert ended["message"]["status"] == "succ"
    assert ended["message"]["status_reason_code"] == "rjct.subscription_code.invalid"


def test_the_webhook_verifier_takes_the_secret_as_a_str(http, published):
    from dtsen.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WebhookVerifier

    secret = "the-secret-the-subscribe-answer-gave"  # JSON: a str, as the README's snippet passes it
    stamp = str(int(time.time()))
    body = json.dumps({"timestamp": int(stamp), "delivery_id": "d-1"}).encode()
    signature = (
        "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    headers = {SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp}
    assert WebhookVerifier(secret).verify(headers, body)["delivery_id"] == "d-1"
    assert WebhookVerifier(secret.encode()).verify(headers, body)["delivery_id"] == "d-1"
