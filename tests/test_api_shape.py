"""The registry API's request and response rules, in process (FastAPI's TestClient) against a real
warehouse with one published sample version: the error shape of every refusal, including routes that
do not exist, and how malformed values are answered (never a 500, never a value in the log)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.factories import (
    api_bearer,
    dci_envelope,
    dci_item,
    dci_predicate,
    published_sample,
)

KEY = "test-disclosure-key"


@pytest.fixture(scope="module")
def published(module_warehouse, tmp_path_factory):
    """A published sample version and a client `bpjs` (PBI JK, 600 requests a minute); its secret."""
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    published_sample(conn, root)
    with conn.transaction():
        secret = create_client(
            conn,
            "bpjs",
            "BPJS",
            ["pbi_jk"],
            ["nik", "desil"],
            600,
            {"pbi_jk", "pkh", "bpnt", "sekolah_rakyat"},
        )
    return {"root": root, "conn": conn, "secret": secret}


@pytest.fixture
def http(published, monkeypatch):
    from dtsen.api.app import create_app

    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(published["root"]))
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def error_code(answer) -> str:
    body = answer.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    return body["errors"][0]["code"]


def test_unknown_routes_and_methods_answer_in_the_dci_error_shape(http, published):
    assert error_code(missing := http.get("/registry/nothing-here")) == "err.request.not_found"
    assert missing.status_code == 404
    assert error_code(wrong := http.get("/registry/sync/search")) == "err.request.bad"
    assert wrong.status_code == 405
    # a path parameter of the wrong type: 400 in the same shape, not FastAPI's 422 with the value echoed
    auth = api_bearer(http, "bpjs", published["secret"])
    typed = http.get("/registry/versions/not-a-number/manifest", headers=auth)
    assert typed.status_code == 400 and error_code(typed) == "err.request.bad"
    assert "not-a-number" not in typed.text


def test_a_search_answers_through_the_routers_with_its_models(http, published):
    auth = api_bearer(http, "bpjs", published["secret"])
    answer = http.post(
        "/registry/sync/search", headers=auth, json=dci_envelope(dci_item(dci_predicate(("desil", "le", 3))))
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["header"]["action"] == "on-search" and body["header"]["status"] == "succ"
    first = body["message"]["search_response"][0]
    assert first["status"] == "succ" and "status_reason_code" not in first
    assert set(first["data"]["reg_records"][0]) == {"nik", "desil"}
    assert first["pagination"]["page_size"] == 10
    broken = http.post("/registry/sync/search", headers=auth, json={"header": {}, "message": {}})
    assert broken.status_code == 400 and error_code(broken) == "err.request.bad"
    assert "header.message_id" in broken.json()["errors"][0]["message"]


def test_the_openapi_contract_is_behind_a_token_and_published_as_a_current_file(http, published):
    import json
    import re
    from pathlib import Path

    from dtsen.api.openapi import published as published_document

    # FastAPI's open documents are not served: the contract names every route and model
    for open_path in ("/openapi.json", "/docs", "/redoc"):
        answer = http.get(open_path)
        assert answer.status_code == 404 and error_code(answer) == "err.request.not_found", open_path
    assert http.get("/registry/openapi.json").status_code == 401
    served = http.get("/registry/openapi.json", headers=api_bearer(http, "bpjs", published["secret"]))
    assert served.status_code == 200
    document = served.json()
    # every route the app answers is in it, and nothing else
    routes = {r.path for r in http.app.routes if r.path not in ("/openapi.json", "/docs", "/redoc")}
    assert set(document["paths"]) == routes
    # the envelope routes show their DCI models; errors are the DCI shape, never FastAPI's 422
    search = document["paths"]["/registry/sync/search"]["post"]
    assert search["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SearchRequest"
    }
    assert "422" not in json.dumps(document["paths"])
    assert document["paths"]["/oauth2/client/token"]["post"]["security"] == []
    # the published file is this document (python -m dtsen.api.openapi > docs/registry-api.openapi.json)
    root = Path(__file__).resolve().parents[1]
    assert (
        json.loads((root / "docs/registry-api.openapi.json").read_text()) == published_document() == document
    )
    # and every route is in the prose that explains it
    prose = (root / "docs/registry-api.md").read_text()
    undocumented = {p for p in routes if re.sub(r"\{[^}]+\}", "{", p).split("{")[0] not in prose}
    assert undocumented == set()
