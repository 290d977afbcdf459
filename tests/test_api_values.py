"""What a client may put into a registry API request, and what of it reaches the logs (issue 24,
items 6 and 7): values are checked with ASCII-only patterns and strict types, so Unicode digits, a list
or string `pagination`, or a non-finite number are refused (400, or the item rejected), never a 500;
an unexpected error answers in the DCI error shape and logs its class, never a value; the disclosure
log keeps the parsed, normalised query with bounded identifiers, never what the client sent.

In process (TestClient) for the request rules; a real `dtsen api` process for what its log and the
disclosure log hold."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import httpx
import psycopg
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
PROGRAMS = {"pbi_jk", "pkh", "bpnt", "sekolah_rakyat"}
# a NIK whose last digit is a superscript two: str.isdigit() says yes, int() raises with the value
SUPERSCRIPT_NIK = "940701650387000²"
ARABIC_INDIC_NIK = "٩٤٠٧٠١٦٥٠٣٨٧٠٠٠١"  # 16 digits int() reads, none of them ASCII


def nik_lookup(value: object) -> dict:
    return {"query_type": "idtype-value", "query": {"type": "NIK", "value": value}}


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """A published sample version and a client `bpjs` (PBI JK, 600 requests a minute); its secret."""
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    version = published_sample(conn, root)
    with conn.transaction():
        secret = create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 600, PROGRAMS)
    return {"root": root, "conn": conn, "secret": secret, "version": version}


@pytest.fixture
def http(published, monkeypatch):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def search(http: TestClient, auth: dict, body: object):
    raw = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return http.post(
        "/registry/sync/search",
        headers=auth | {"Content-Type": "application/json"},
        content=raw.encode(),
    )


def error_code(answer) -> str:
    body = answer.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    return body["errors"][0]["code"]


def the_item(answer) -> dict:
    assert answer.status_code == 200, answer.text
    return answer.json()["message"]["search_response"][0]


def test_a_nik_of_unicode_digits_is_a_rejected_item_not_a_500(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    for value in (
        SUPERSCRIPT_NIK,
        ARABIC_INDIC_NIK,
        "9407016503870001\n",
        " 940701650387000",
        9407016503870001,
    ):
        answer = search(http, auth, dci_envelope(dci_item(nik_lookup(value))))
        rejected = the_item(answer)
        assert rejected["status"] == "rjct", value
        assert rejected["status_reason_code"] == "rjct.search_criteria.invalid"
        assert "940701650387000" not in answer.text  # the answer does not echo the value either
    # a NIK of 16 ASCII digits is still looked up
    assert (
        the_item(search(http, auth, dci_envelope(dci_item(nik_lookup("9999999999999999")))))["status"]
        == "succ"
    )


def test_region_codes_and_versions_take_ascii_digits_only(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    for region in ("3²", "٣٦", "36 "):
        rejected = the_item(
            search(http, auth, dci_envelope(dci_item(dci_predicate(("kode_wilayah", "eq", region)))))
        )
        assert (
            rejected["status"] == "rjct" and rejected["status_reason_code"] == "rjct.search_criteria.invalid"
        )
    arabic_version = str(published["version"]).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    for version in (arabic_version, f"{published['version']}_0", True):
        answer = search(http, auth, dci_envelope(dci_item(dci_predicate(("version", "eq", version)))))
        assert answer.status_code == 400 and error_code(answer) == "err.request.bad", version
    ok = search(http, auth, dci_envelope(dci_item(dci_predicate(("version", "eq", published["version"])))))
    assert the_item(ok)["status"] == "succ"


def test_malformed_pagination_is_a_rejected_item_not_a_500(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    for pagination in (
        [10, 1],
        ["page_size"],
        "10",
        "page_size=10",
        {"page_size": "10", "page_number": 1},
        {"page_size": 10, "page_number": "1"},
        {"page_size": 1.5},
        {"page_size": True},
    ):
        answer = search(
            http, auth, dci_envelope(dci_item(dci_predicate(("desil", "le", 3), pagination=pagination)))
        )
        rejected = the_item(answer)
        assert rejected["status"] == "rjct", pagination
        assert rejected["status_reason_code"] == "rjct.pagination.invalid", pagination


def test_non_finite_numbers_are_refused_with_400(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    good = json.dumps(dci_envelope(dci_item(dci_predicate(("desil", "le", 3)))))
    assert search(http, auth, good).status_code == 200
    for literal in ("Infinity", "-Infinity", "NaN", "1e999"):
        for body in (
            good.replace('"attribute_value": 3', f'"attribute_value": {literal}'),
            good.replace('"page_size": 10', f'"page_size": {literal}'),
        ):
            assert literal in body
            answer = search(http, auth, body)
            assert answer.status_code == 400, (literal, answer.text)
            assert error_code(answer) == "err.request.bad"


def test_identifiers_are_bounded_and_of_a_safe_charset(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    good = dci_predicate(("desil", "le", 3))
    assert the_item(search(http, auth, dci_envelope(dci_item(good, "ref-1:a/b_c.d"))))["status"] == "succ"
    for reference in ("r" * 100, "ref\n1", "ref 1", "réf", "ref\u202e1", ""):
        answer = search(http, auth, dci_envelope(dci_item(good, reference)))
        assert answer.status_code == 400 and error_code(answer) == "err.request.bad", repr(reference)
        assert "message.search_request.0.reference_id" in answer.json()["errors"][0]["message"]
    for transaction in ("t" * 100, "txn\r\n1", "txn²"):
        answer = search(http, auth, dci_envelope(dci_item(good), transaction=transaction))
        assert answer.status_code == 400 and error_code(answer) == "err.request.bad", repr(transaction)


def test_an_unexpected_error_answers_in_the_dci_shape_and_logs_no_values(
    http, published, monkeypatch, caplog
):
    from dtsen.api import search as api_search

    auth = api_bearer(http, "bpjs", published["secret"])

    def broken(*_args, **_kwargs):
        raise ValueError("invalid literal for int() with base 10: '9407016503870001'")

    monkeypatch.setattr(api_search, "page", broken)
    with caplog.at_level(logging.DEBUG):
        answer = search(http, auth, dci_envelope(dci_item(dci_predicate(("desil", "le", 3)))))
    assert answer.status_code == 500
    assert error_code(answer) == "err.service.internal"
    assert "9407016503870001" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    logged = "\n".join(
        f"{r.getMessage()} {logging.Formatter().formatException(r.exc_info) if r.exc_info else ''}"
        for r in caplog.records
    )
    assert "ValueError" in logged and "9407016503870001" not in logged

    def database_error(*_args, **_kwargs):
        raise psycopg.errors.UniqueViolation("duplicate key value (nik)=(9407016503870001)")

    monkeypatch.setattr(api_search, "page", database_error)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        answer = search(http, auth, dci_envelope(dci_item(dci_predicate(("desil", "le", 3)))))
    assert answer.status_code == 500 and error_code(answer) == "err.service.internal"
    logged = "\n".join(
        f"{r.getMessage()} {logging.Formatter().formatException(r.exc_info) if r.exc_info else ''}"
        for r in caplog.records
    )
    assert "UniqueViolation" in logged and "9407016503870001" not in logged


@pytest.fixture(scope="module")
def server(published, tmp_path_factory):
    """`dtsen api` as a process, its output (uvicorn's log and ours) in a file: base URL and log."""
    env = os.environ | {"DTSEN_PUBLISH_ROOT": str(published["root"]), "DTSEN_API_DISCLOSURE_KEY": KEY}
    log = tmp_path_factory.mktemp("api") / "api.log"
    with running_registry_api(env, log) as (base, _):
        yield {"base": base, "log": log}


def test_a_real_server_logs_no_nik_digits_and_keeps_no_client_junk(server, published):
    token = httpx.post(
        f"{server['base']}/oauth2/client/token",
        data={"grant_type": "client_credentials", "client_id": "bpjs", "client_secret": published["secret"]},
    ).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"{server['base']}/registry/sync/search"
    for value in (SUPERSCRIPT_NIK, ARABIC_INDIC_NIK):
        answer = httpx.post(
            url, content=json.dumps(dci_envelope(dci_item(nik_lookup(value)))).encode(), headers=auth
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["message"]["search_response"][0]["status"] == "rjct"
    bad_desil = json.dumps(dci_envelope(dci_item(dci_predicate(("desil", "le", 3))))).replace(
        '"attribute_value": 3', '"attribute_value": Infinity'
    )
    assert httpx.post(url, content=bad_desil.encode(), headers=auth).status_code == 400
    # 200 KB of the client's own in every place a JSON object takes extra keys: under the body cap
    junk = "J" * 200_000
    criteria = dci_predicate(("program", "eq", "pbi_jk"), ("desil", "le", 3))
    criteria["query"][0]["expression1"]["junk"] = junk
    criteria["query"][0]["junk"] = junk[:1000]
    criteria["pagination"]["junk"] = junk[:1000]
    body = dci_envelope(dci_item(criteria | {"junk": junk[:1000]}, "ref-junk"))
    answer = httpx.post(url, content=json.dumps(body).encode(), headers=auth, timeout=60)
    assert the_item(answer)["status"] == "succ" and the_item(answer)["data"]["reg_records"]
    conn = published["conn"]
    conn.rollback()
    row = conn.execute(
        "SELECT request, octet_length(request::text), pg_column_size(request) FROM api.disclosure "
        "WHERE client_id = 'bpjs' AND request->>'reference_id' = 'ref-junk'"
    ).fetchone()
    conn.rollback()
    assert row is not None
    request, text_length, stored = row
    assert "JJJJ" not in json.dumps(request) and text_length < 1000 and stored < 1000, (text_length, stored)
    # what is kept is the parsed query: the program, the version and the filters it applied
    assert request["query_type"] == "predicate" and request["reference_id"] == "ref-junk"
    assert request["query"]["program"] == "pbi_jk" and request["query"]["desil_max"] == 3
    logged = server["log"].read_text(errors="replace")
    for digits in ("940701650387000", "٩٤٠٧٠١٦٥٠٣٨٧٠٠٠", "JJJJ"):
        assert digits not in logged, digits
    # nor any 15 of the 16 digits: no run of 6 of them in a row
    assert "9407016" not in logged and "4070165" not in logged and "0387000" not in logged


def test_disclosures_by_nik_refuses_unicode_digits_without_echoing_them(published):
    """`dtsen disclosures --nik` (the operator's side of the log) takes ASCII digits only, too."""
    env = os.environ | {"DTSEN_API_DISCLOSURE_KEY": KEY}
    for value in (SUPERSCRIPT_NIK, ARABIC_INDIC_NIK):
        done = subprocess.run(
            [sys.executable, "-m", "dtsen", "disclosures", "--nik", value],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "a NIK is 16 digits" in done.stderr
        assert "940701650387000" not in done.stdout + done.stderr and "Traceback" not in done.stderr
