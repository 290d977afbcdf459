"""Limits of the registry API that a client cannot walk around (issue 24, items 4 and 5): items per
envelope and list lengths, the rate charged per search item, request bodies refused before they are
read (also on the unauthenticated token endpoint, also chunked), deep nesting; the token endpoint does
the same work for known and unknown client ids and is rate-limited per source.

In process (TestClient) for the request rules; a real `dtsen api` process for what only a socket shows."""

from __future__ import annotations

import os
import socket
import time

import pytest
from fastapi.testclient import TestClient

from dtsen_dev.local_airflow import free_port
from tests.factories import (
    api_bearer,
    dci_envelope,
    dci_item,
    dci_predicate,
    published_sample,
    running_registry_api,
)

KEY = "test-disclosure-key"
PROGRAMS = {"pbi_jk", "pkh", "bpnt", "sekolah_rakyat"}


def page(reference: str, *expressions: tuple[str, str, object], size: int = 1) -> dict:
    criteria = dci_predicate(
        *(expressions or [("desil", "ge", 1)]), pagination={"page_size": size, "page_number": 1}
    )
    return dci_item(criteria, reference)


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """A published sample version; clients `bpjs` (600 requests a minute) and `five` (5 a minute)."""
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    published_sample(conn, root)
    with conn.transaction():
        secrets = {
            "bpjs": create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 600, PROGRAMS),
            "five": create_client(conn, "five", "Five", ["pbi_jk"], ["nik", "desil"], 5, PROGRAMS),
        }
    return {"root": root, "secrets": secrets}


@pytest.fixture
def http(published, monkeypatch):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def server(published, tmp_path_factory):
    """`dtsen api` as a process: its base URL and port."""
    port = free_port()
    env = os.environ | {"DTSEN_PUBLISH_ROOT": str(published["root"]), "DTSEN_API_DISCLOSURE_KEY": KEY}
    log = tmp_path_factory.mktemp("api") / "api.log"
    with running_registry_api(env, log, port) as (_, process):
        yield {"port": port, "process": process, "log": log}


def raw_request(port: int, head: bytes, body_chunks=(), timeout: float = 10) -> tuple[bytes, float]:
    """Send `head` and then the chunks (stopping when the server has answered); the answer's first
    bytes and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        answer = b""
        for chunk in body_chunks:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if answer:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(timeout)
        try:
            while not answer.endswith(b"}") and (more := sock.recv(65536)):
                answer += more
        except (TimeoutError, ConnectionResetError):
            pass
    return answer, time.monotonic() - started


def test_an_envelope_carries_at_most_the_item_cap_and_each_item_is_charged_to_the_rate(http, published):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    many = http.post(
        "/registry/sync/search",
        headers=auth,
        json=dci_envelope(*(page(f"r{i}", size=1000) for i in range(300))),
    )
    assert many.status_code == 400 and "at most 10 items" in many.json()["errors"][0]["message"]
    # five requests a minute: one envelope of five pages spends them all
    five = api_bearer(http, "five", published["secrets"]["five"])
    spent = http.post(
        "/registry/sync/search", headers=five, json=dci_envelope(*(page(f"r{i}") for i in range(5)))
    )
    assert spent.status_code == 200 and len(spent.json()["message"]["search_response"]) == 5
    over = http.post("/registry/sync/search", headers=five, json=dci_envelope(page("one-more")))
    assert over.status_code == 429
    assert int(over.headers["retry-after"]) >= 10  # about 12 s a request at 5 a minute, not "1"


def test_lists_inside_a_query_are_capped(http, published):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"])
    regions = [f"{3600 + i:04d}" for i in range(500)]
    answer = http.post(
        "/registry/sync/search", headers=auth, json=dci_envelope(page("r", ("kode_wilayah", "in", regions)))
    )
    item = answer.json()["message"]["search_response"][0]
    assert item["status"] == "rjct" and "at most 100" in item["status_reason_message"]


def test_json_nested_deeper_than_an_envelope_is_a_400_not_a_500(http, published):
    auth = api_bearer(http, "bpjs", published["secrets"]["bpjs"]) | {"Content-Type": "application/json"}
    for depth in (100_000, 500):
        deep = http.post("/registry/sync/search", headers=auth, content=b"[" * depth + b"]" * depth)
        assert deep.status_code == 400, (depth, deep.text)
        assert deep.json()["errors"][0]["code"] == "err.request.bad"
    token = http.post(
        "/oauth2/client/token",
        headers={"Content-Type": "application/json"},
        content=b"[" * 100_000 + b"]" * 100_000,
    )
    assert token.status_code == 400


def test_a_large_body_is_refused_by_its_length_before_it_is_read(server):
    head = (
        b"POST /oauth2/client/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 157286400\r\n\r\n"
    )
    answer, took = raw_request(server["port"], head)  # no body at all: the header is enough
    assert answer.startswith(b"HTTP/1.1 413") and took < 5, answer[:200]


def test_a_chunked_body_is_refused_once_it_grows_past_the_cap(server):
    head = (
        b"POST /oauth2/client/token HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    block = b"a" * 65536
    chunk = f"{len(block):x}\r\n".encode() + block + b"\r\n"
    answer, _ = raw_request(server["port"], head, [chunk] * 2400)  # 150 MiB offered
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    rss_kib = int(open(f"/proc/{server['process'].pid}/status").read().split("VmRSS:")[1].split()[0])
    assert rss_kib < 300 * 1024  # it never held the 150 MiB


def token_request(http: TestClient, client_id: str, secret: str):
    return http.post(
        "/oauth2/client/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def test_a_wrong_secret_takes_as_long_for_an_unknown_client_id_as_for_a_known_one(published, monkeypatch):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    monkeypatch.setenv("DTSEN_API_TOKEN_TRIES_PER_MINUTE", "1000")
    with TestClient(create_app()) as http:
        token_request(http, "nobody", "warm-up")
        took: dict[str, list[float]] = {"bpjs": [], "no-such-client": []}
        for _ in range(5):
            for client_id in took:
                started = time.perf_counter()
                answer = token_request(http, client_id, "not-the-secret")
                took[client_id].append(time.perf_counter() - started)
                assert answer.status_code == 401 and answer.json() == {"error": "invalid_client"}
    known, unknown = (sorted(t)[2] for t in took.values())
    assert unknown > 0.6 * known, took  # before: 6-8 ms against 114-124 ms


def test_failed_token_requests_are_limited_per_source_address(http, published):
    codes = [token_request(http, "no-such-client", "guess").status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]
    limited = token_request(http, "no-such-client", "guess")
    assert limited.json()["errors"][0]["code"] == "err.request.too_many_requests"
    assert int(limited.headers["retry-after"]) >= 1


def test_a_client_may_authenticate_with_http_basic(http, published):
    import base64

    secret = published["secrets"]["bpjs"]
    basic = base64.b64encode(f"bpjs:{secret}".encode()).decode()
    answer = http.post(
        "/oauth2/client/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert answer.status_code == 200, answer.text
    auth = {"Authorization": f"Bearer {answer.json()['access_token']}"}
    assert http.get("/registry/versions", headers=auth).status_code == 200
    wrong = base64.b64encode(b"bpjs:wrong").decode()
    refused = http.post(
        "/oauth2/client/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {wrong}"},
    )
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Basic"
