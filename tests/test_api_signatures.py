"""Signed DCI envelopes (issue 24): the `signature` over header and message, Ed25519 with a key per
client, verified on requests and set on answers (dtsen.api.signing, docs/registry-api.md, Signatures).

Requests are signed here as a program team would, from the documented scheme with `cryptography` alone
(not with dtsen's own `sign`), so the tests hold the documentation to the implementation. In process
(FastAPI's TestClient) against a real warehouse with one published sample version, and once against
a real `dtsen api` process."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from tests.factories import (
    api_bearer,
    dci_envelope,
    dci_item,
    dci_predicate,
    published_sample,
    running_registry_api,
    start_webhook_receiver,
)

KEY = "test-disclosure-key"
PROGRAMS = {"pbi_jk", "pkh", "bpnt", "sekolah_rakyat"}
SIGNED = Ed25519PrivateKey.generate()  # the key client `signer` registered
OTHER = Ed25519PrivateKey.generate()  # the key client `other` registered


# -- a program team's side, as docs/registry-api.md describes it ----------------------------------


def public_text(private: Ed25519PrivateKey) -> str:
    return base64.b64encode(private.public_key().public_bytes_raw()).decode()


def key_id_of(private: Ed25519PrivateKey) -> str:
    return hashlib.sha256(private.public_key().public_bytes_raw()).hexdigest()[:16]


def signing_string(created: int, expires: int, header: dict, message: dict) -> bytes:
    canonical = json.dumps(
        {"header": header, "message": message}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
    digest = base64.b64encode(hashlib.blake2b(canonical).digest()).decode()
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest}".encode()


def signed(
    envelope: dict,
    private: Ed25519PrivateKey,
    client_id: str,
    *,
    created: int | None = None,
    lifetime: int = 300,
    key_id: str | None = None,
    kid_sender: str | None = None,
) -> dict:
    """`envelope` sent by `client_id` (its header's sender_id), signed with `private`."""
    envelope = copy.deepcopy(envelope)
    envelope["header"]["sender_id"] = client_id
    created = int(time.time()) if created is None else created
    expires = created + lifetime
    raw = private.sign(signing_string(created, expires, envelope["header"], envelope["message"]))
    envelope["signature"] = (
        f'Signature: namespace="dci", kidId="{kid_sender or client_id}|{key_id or key_id_of(private)}|ed25519", '
        f'algorithm="ed25519", created="{created}", expires="{expires}", '
        f'headers="(created) (expires) digest", signature="{base64.b64encode(raw).decode()}"'
    )
    return envelope


def search() -> dict:
    return dci_envelope(dci_item(dci_predicate(("desil", "le", 3))))


# -- the registry ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """A published sample version; clients `signer` and `other` with registered keys, `keyless`
    without: their secrets."""
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    published_sample(conn, root)
    secrets = {}
    with conn.transaction():
        for client, key in (("signer", SIGNED), ("other", OTHER), ("keyless", None)):
            secrets[client] = create_client(
                conn,
                client,
                client,
                ["pbi_jk"],
                ["nik", "desil"],
                600,
                PROGRAMS,
                public_text(key) if key else None,
            )
    return {"root": root, "conn": conn, "secrets": secrets}


def _app(published, monkeypatch, **env):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return TestClient(create_app(), raise_server_exceptions=False)


@pytest.fixture
def http(published, monkeypatch):
    with _app(published, monkeypatch) as client:
        yield client


def post(http, published, client: str, envelope: dict, path: str = "/registry/sync/search"):
    return http.post(path, headers=api_bearer(http, client, published["secrets"][client]), json=envelope)


def refusal(answer) -> tuple[int, str, str]:
    body = answer.json()
    assert set(body) == {"errors"}, body
    return answer.status_code, body["errors"][0]["code"], body["errors"][0]["message"]


# -- requests -------------------------------------------------------------------------------------


def test_a_request_signed_with_the_clients_registered_key_is_answered(http, published):
    answer = post(http, published, "signer", signed(search(), SIGNED, "signer"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["message"]["search_response"][0]["status"] == "succ"


def test_a_message_changed_after_signing_is_refused_as_invalid(http, published):
    tampered = signed(search(), SIGNED, "signer")
    tampered["message"]["search_request"][0]["search_criteria"]["pagination"]["page_size"] = 1000
    status, code, message = refusal(post(http, published, "signer", tampered))
    assert (status, code) == (401, "err.signature.invalid")
    assert "does not match" in message


ENVELOPE_ROUTES = (
    "/registry/sync/search",
    "/registry/search",
    "/registry/subscribe",
    "/registry/sync/subscribe",
    "/registry/unsubscribe",
    "/registry/sync/unsubscribe",
    "/registry/txn/status",
    "/registry/sync/txn/status",
)


def test_an_unsigned_request_of_a_client_with_a_key_is_refused_as_missing_on_every_envelope_route(
    http, published
):
    unsigned = search()
    for envelope in (
        unsigned,
        unsigned | {"signature": None},
        {k: v for k, v in unsigned.items() if k != "signature"},
    ):
        assert refusal(post(http, published, "signer", envelope))[:2] == (401, "err.signature.missing")
    # checked before the envelope is read, whatever the route expects of it
    for path in ENVELOPE_ROUTES:
        refused = post(http, published, "signer", unsigned, path)
        assert refusal(refused)[:2] == (401, "err.signature.missing"), path
        tampered = signed(unsigned, SIGNED, "signer")
        tampered["header"]["total_count"] = 5
        assert refusal(post(http, published, "signer", tampered, path))[:2] == (401, "err.signature.invalid")


NOW = int(time.time())


@pytest.mark.parametrize(
    ("how", "envelope"),
    [
        ("expired", lambda: signed(search(), SIGNED, "signer", created=NOW - 400, lifetime=300)),
        ("created in the future", lambda: signed(search(), SIGNED, "signer", created=int(time.time()) + 600)),
        ("valid for longer than the maximum age", lambda: signed(search(), SIGNED, "signer", lifetime=3600)),
        (
            "a key id that is not the client's",
            lambda: signed(search(), SIGNED, "signer", key_id="0123456789abcdef"),
        ),
        ("another client's key, under its own key id", lambda: signed(search(), OTHER, "signer")),
        (
            "another client's key, under this client's key id",
            lambda: signed(search(), OTHER, "signer", key_id=key_id_of(SIGNED)),
        ),
        ("a kidId naming another sender", lambda: signed(search(), SIGNED, "signer", kid_sender="other")),
        ("not of the form", lambda: {**search(), "signature": "Signature: whatever"}),
        ("not a string", lambda: {**search(), "signature": {"namespace": "dci"}}),
        (
            "another namespace",
            lambda: (
                (e := signed(search(), SIGNED, "signer"))
                | {"signature": e["signature"].replace('namespace="dci"', 'namespace="x"')}
            ),
        ),
        (
            "another algorithm",
            lambda: (
                (e := signed(search(), SIGNED, "signer"))
                | {"signature": e["signature"].replace('algorithm="ed25519"', 'algorithm="rsa"')}
            ),
        ),
    ],
)
def test_a_signature_that_does_not_verify_is_refused_as_invalid_naming_no_value(
    http, published, how, envelope
):
    sent = envelope()
    status, code, message = refusal(post(http, published, "signer", sent))
    assert (status, code) == (401, "err.signature.invalid"), how
    assert key_id_of(SIGNED) not in message and str(NOW) not in message and "whatever" not in message


def test_the_header_sender_id_and_the_kid_sender_must_both_be_the_client(http, published):
    # header.sender_id says another sender (the kid says this client), or both do
    for sender, kid_sender in (("other", "signer"), ("other", "other")):
        forged = signed(search(), SIGNED, sender, kid_sender=kid_sender)
        assert refusal(post(http, published, "signer", forged))[:2] == (401, "err.signature.invalid")


def test_a_keyless_client_is_answered_unsigned_and_its_signature_refused_when_none_is_required(
    http, published
):
    assert post(http, published, "keyless", search()).status_code == 200
    status, code, message = refusal(post(http, published, "keyless", signed(search(), OTHER, "keyless")))
    assert (status, code) == (401, "err.signature.invalid")
    assert "no registered key" in message


def test_with_signed_requests_required_a_keyless_client_is_refused(published, monkeypatch):
    with _app(published, monkeypatch, DTSEN_API_REQUIRE_SIGNED_REQUESTS="1") as http:
        assert refusal(post(http, published, "keyless", search()))[:2] == (401, "err.signature.missing")
        signed_anyway = post(http, published, "keyless", signed(search(), OTHER, "keyless"))
        assert refusal(signed_anyway)[:2] == (401, "err.signature.invalid")
        assert post(http, published, "signer", signed(search(), SIGNED, "signer")).status_code == 200


# -- answers --------------------------------------------------------------------------------------


def test_the_answer_of_a_search_verifies_with_the_published_key_and_a_changed_one_does_not(http, published):
    from dtsen.api.signing import SignatureError, verify_envelope

    published_key = http.get("/registry/signing-key")  # no token: the key is public
    assert published_key.status_code == 200
    key = published_key.json()
    assert key["algorithm"] == "ed25519" and key["kid"] == f"dtsen|{key['key_id']}|ed25519"
    answer = post(http, published, "keyless", search())
    body = answer.json()
    assert body["signature"].startswith('Signature: namespace="dci", kidId="dtsen|')
    verify_envelope(body, key["public_key"])
    assert answer.headers["content-length"] == str(len(answer.content))
    for change in (
        lambda b: b["header"].update(receiver_id="other"),
        lambda b: b["message"]["search_response"][0]["data"]["reg_records"][0].update(desil=1),
        lambda b: b.update(signature=b["signature"].replace("dtsen|", "other|")),
    ):
        changed = copy.deepcopy(body)
        change(changed)
        with pytest.raises(SignatureError) as refused:
            verify_envelope(changed, key["public_key"])
        assert refused.value.code == "err.signature.invalid"
    with pytest.raises(SignatureError) as refused:
        verify_envelope(body, public_text(OTHER))  # another registry's key
    assert refused.value.code == "err.signature.invalid"


def test_the_on_search_callback_of_an_asynchronous_search_is_signed_and_its_ack_is_not(
    published, monkeypatch
):
    from dtsen.api.signing import verify_envelope

    server, url, calls = start_webhook_receiver()
    allowed = {"DTSEN_CALLBACK_ALLOWLIST": "127.0.0.1", "DTSEN_CALLBACK_SIGNING_KEY": "test-callback-key"}
    try:
        with _app(published, monkeypatch, **allowed) as http:
            envelope = signed(
                search() | {"header": search()["header"] | {"sender_uri": f"{url}/on-search"}},
                SIGNED,
                "signer",
            )
            ack = post(http, published, "signer", envelope, "/registry/search")
            assert ack.status_code == 200, ack.text
            assert ack.json()["message"]["ack_status"] == "ACK" and "signature" not in ack.json()
            deadline = time.monotonic() + 30
            while not calls and time.monotonic() < deadline:
                time.sleep(0.05)
            key = http.get("/registry/signing-key").json()["public_key"]
    finally:
        server.shutdown()
    (call,) = calls
    body = json.loads(call["body"])
    assert body["header"]["action"] == "on-search"
    verify_envelope(body, key)


def test_errors_and_answers_without_a_header_are_not_signed(http, published):
    unsigned = post(http, published, "signer", search())
    assert "signature" not in unsigned.json()
    versions = http.get(
        "/registry/versions", headers=api_bearer(http, "keyless", published["secrets"]["keyless"])
    )
    assert versions.status_code == 200 and "signature" not in json.dumps(versions.json())


# -- keys -----------------------------------------------------------------------------------------


def test_the_api_refuses_to_start_without_a_signing_key_or_with_one_that_is_not_a_key(published, monkeypatch):
    from dtsen.api.app import create_app
    from dtsen.errors import DataError

    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    monkeypatch.delenv("DTSEN_API_SIGNING_KEY")
    with pytest.raises(DataError, match="DTSEN_API_SIGNING_KEY is not set"):
        create_app()
    monkeypatch.setenv("DTSEN_API_SIGNING_KEY", "not-a-key-but-a-secret-value")
    with pytest.raises(DataError, match="DTSEN_API_SIGNING_KEY is not the base64 of 32 bytes") as refused:
        create_app()
    assert "not-a-key-but-a-secret-value" not in str(refused.value)


def _dtsen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtsen", *args], env=os.environ, capture_output=True, text=True, timeout=120
    )


def test_api_client_set_key_registers_a_checked_key_and_the_registry_key_commands_print_it(http, published):
    made = _dtsen("api-client", "create", "--id", "cli-client", "--name", "CLI", "--programs", "pbi_jk")
    assert made.returncode == 0, made.stderr
    refused = _dtsen("api-client", "set-key", "--id", "cli-client", "--public-key", "bm90IGEga2V5")
    assert refused.returncode != 0 and "bm90IGEga2V5" not in refused.stderr
    assert "not the base64 of 32 bytes" in refused.stderr
    key = Ed25519PrivateKey.generate()
    registered = _dtsen("api-client", "set-key", "--id", "cli-client", "--public-key", public_text(key))
    assert registered.returncode == 0, registered.stderr
    assert key_id_of(key) in registered.stdout
    listed = _dtsen("api-client", "list")
    assert f"signing key {key_id_of(key)}" in listed.stdout
    secret = made.stdout.split("client_secret", 1)[1].split()[0]
    assert post(http, {"secrets": {"cli-client": secret}}, "cli-client", search()).status_code == 401
    assert (
        post(
            http, {"secrets": {"cli-client": secret}}, "cli-client", signed(search(), key, "cli-client")
        ).status_code
        == 200
    )
    assert _dtsen("api-client", "set-key", "--id", "cli-client", "--remove").returncode == 0
    assert post(http, {"secrets": {"cli-client": secret}}, "cli-client", search()).status_code == 200

    shown = _dtsen("api-signing-key", "show")
    assert shown.returncode == 0, shown.stderr
    route = http.get("/registry/signing-key").json()
    assert (
        f"kid        {route['kid']}" in shown.stdout and f"public_key {route['public_key']}" in shown.stdout
    )
    generated = _dtsen("api-signing-key", "generate")
    assert generated.returncode == 0, generated.stderr
    private = generated.stdout.split("DTSEN_API_SIGNING_KEY=", 1)[1].split()[0]
    assert len(base64.b64decode(private, validate=True)) == 32
    assert private not in shown.stdout  # a new key each time


def test_a_client_key_that_is_not_a_key_is_refused_by_the_warehouse_too(published):
    import psycopg

    conn = published["conn"]
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute("UPDATE api.client SET signing_public_key = 'bm90IGEga2V5' WHERE client_id = 'keyless'")


# -- a real server --------------------------------------------------------------------------------


def test_a_real_server_verifies_signed_requests_and_signs_its_answers(published, tmp_path):
    from dtsen.api.signing import SignatureError, verify_envelope

    env = os.environ | {"DTSEN_PUBLISH_ROOT": str(published["root"]), "DTSEN_API_DISCLOSURE_KEY": KEY}
    with running_registry_api(env, tmp_path / "api.log") as (base, _), httpx.Client(base_url=base) as http:
        key = http.get("/registry/signing-key").json()["public_key"]
        auth = api_bearer(http, "signer", published["secrets"]["signer"])
        answer = http.post("/registry/sync/search", headers=auth, json=signed(search(), SIGNED, "signer"))
        assert answer.status_code == 200, answer.text
        verify_envelope(answer.json(), key)
        tampered = answer.json()
        tampered["message"]["search_response"][0]["pagination"]["total_count"] += 1
        with pytest.raises(SignatureError):
            verify_envelope(tampered, key)
        unsigned = http.post("/registry/sync/search", headers=auth, json=search())
        assert unsigned.status_code == 401 and unsigned.json()["errors"][0]["code"] == "err.signature.missing"
        changed = signed(search(), SIGNED, "signer")
        changed["header"]["total_count"] = 2
        refused = http.post("/registry/sync/search", headers=auth, json=changed)
        assert refused.status_code == 401 and refused.json()["errors"][0]["code"] == "err.signature.invalid"
