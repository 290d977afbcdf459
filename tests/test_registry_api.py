"""The registry API (`dtsen api`) as program teams use it: a real server process, a real HTTP client
(httpx), a real PostgreSQL warehouse after two published sample versions.

Clients: `bpjs` (PBI JK, the default fields), `kemensos` (PKH and BPNT, with names), `slow` (PBI JK,
two requests a minute)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import running_registry_api, start_webhook_receiver

KEY = "test-disclosure-key"
NOW = "2026-12-03T10:00:00+07:00"


def _envelope(*items: dict, action: str = "search") -> dict:
    return {
        "signature": "",
        "header": {
            "version": "1.0.0",
            "message_id": "msg-1",
            "message_ts": NOW,
            "action": action,
            "sender_id": "test-client",
            "total_count": len(items),
        },
        "message": {"transaction_id": "txn-1", "search_request": list(items)},
    }


def _predicate(*expressions: tuple[str, str, object], page: int = 1, size: int = 1000) -> dict:
    return {
        "reference_id": f"ref-{page}",
        "timestamp": NOW,
        "search_criteria": {
            "query_type": "predicate",
            "query": [
                {"seq_num": i + 1, "expression1": {"attribute_name": n, "operator": o, "attribute_value": v}}
                for i, (n, o, v) in enumerate(expressions)
            ],
            "pagination": {"page_size": size, "page_number": page},
        },
    }


def _printed_secret(made: subprocess.CompletedProcess) -> str:
    """The secret `dtsen api-client create` prints once."""
    return next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("client_secret"))


class Api:
    def __init__(self, base: str, warehouse: str, env: dict, publish_root):
        self.base, self.warehouse, self.env, self.publish_root = base, warehouse, env, publish_root
        self.secrets: dict[str, str] = {}

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.warehouse), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def dtsen(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dtsen", *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def token(self, client: str) -> str:
        answer = httpx.post(
            f"{self.base}/oauth2/client/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": self.secrets[client],
            },
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def search(self, token: str, *items: dict) -> httpx.Response:
        return httpx.post(
            f"{self.base}/registry/sync/search",
            json=_envelope(*items),
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )


@pytest.fixture(scope="module")
def api(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("registry-api")
    warehouse = scratch_database("api")
    env = os.environ | {
        "DTSEN_DATABASE_URL": warehouse,
        "DTSEN_LANDING_ROOT": str(SAMPLE_DIR / "landing"),
        "DTSEN_PUBLISH_ROOT": str(work / "publish"),
        "DTSEN_RAW_ROOT": str(work / "raw"),
        "DTSEN_OUTBOX": str(work / "outbox"),
        "DTSEN_API_DISCLOSURE_KEY": KEY,
        "DTSEN_CALLBACK_SIGNING_KEY": "test-callback-signing-key",
        "DTSEN_CALLBACK_ALLOWLIST": "127.0.0.1",  # the test's webhook receivers, on loopback
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "DTSEN_DATABASE_URL",
            "DTSEN_LANDING_ROOT",
            "DTSEN_PUBLISH_ROOT",
            "DTSEN_RAW_ROOT",
            "DTSEN_OUTBOX",
        ):
            patch.setenv(name, env[name])
        from dtsen.round import RoundContext, run_round
        from dtsen.warehouse.migrate import migrate

        with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
            migrate(conn)
        for round_id in ("2026-Q1", "2026-Q2"):
            run_round(RoundContext.create(round_id))
    port = free_port()
    site = Api(f"http://127.0.0.1:{port}", warehouse, env, work / "publish")
    for client, programs, fields, rate in (
        ("bpjs", "pbi_jk", "nik,no_kk,kode_wilayah,desil,prioritas", "600"),
        ("kemensos", "pkh,bpnt", "nik,no_kk,kode_wilayah,desil,nama", "600"),
        ("slow", "pbi_jk", "nik,desil", "2"),
    ):
        made = site.dtsen(
            "api-client",
            "create",
            "--id",
            client,
            "--name",
            client,
            "--programs",
            programs,
            "--fields",
            fields,
            "--rate",
            rate,
        )
        assert made.returncode == 0, made.stderr
        site.secrets[client] = _printed_secret(made)
    with running_registry_api(env, work / "api.log", port):
        yield site


def test_paging_through_a_program_returns_exactly_the_rows_of_its_parquet_file(api):
    token = api.token("bpjs")
    rows, page = [], 1
    while True:
        answer = api.search(
            token, _predicate(("program", "eq", "pbi_jk"), ("version", "eq", 2), page=page, size=100)
        )
        assert answer.status_code == 200, answer.text
        item = answer.json()["message"]["search_response"][0]
        assert item["status"] == "succ" and item["reference_id"] == f"ref-{page}"
        if not item["data"]["reg_records"]:
            break
        rows += item["data"]["reg_records"]
        page += 1
    total = item["pagination"]["total_count"]
    table = pq.read_table(api.publish_root / "versions" / "2" / "programs" / "pbi_jk.parquet").to_pylist()
    key = ("nik", "no_kk", "kode_wilayah", "desil", "prioritas")
    assert sorted(tuple(r[k] for k in key) for r in rows) == sorted(tuple(r[k] for k in key) for r in table)
    assert total == len(table) == len(rows) and len({r["nik"] for r in rows}) == len(rows)


def test_filters_by_region_prefix_and_desil(api):
    token = api.token("bpjs")
    answer = api.search(token, _predicate(("kode_wilayah", "eq", "3674"), ("desil", "le", 2)))
    records = answer.json()["message"]["search_response"][0]["data"]["reg_records"]
    expected = api.sql(
        "SELECT count(*) FROM publish.recipient WHERE version = 2 AND program = 'pbi_jk' "
        "AND kode_wilayah LIKE '3674%%' AND desil <= 2"
    )[0][0]
    assert len(records) == expected > 0
    assert all(r["kode_wilayah"].startswith("3674") and r["desil"] <= 2 for r in records)


def test_a_client_sees_only_its_own_programs_and_fields(api):
    pkh = api.token("kemensos")
    forbidden = api.search(pkh, _predicate(("program", "eq", "pbi_jk")))
    assert forbidden.status_code == 403 and forbidden.json()["errors"][0]["code"] == "err.request.forbidden"
    unknown = api.search(pkh, _predicate(("program", "eq", "no_such_program")))
    assert unknown.status_code == 404
    several = api.search(pkh, _predicate(("desil", "le", 3)))  # two programs: which one?
    assert several.json()["message"]["search_response"][0]["status"] == "rjct"
    mine = api.search(pkh, _predicate(("program", "eq", "pkh"), size=5)).json()
    record = mine["message"]["search_response"][0]["data"]["reg_records"][0]
    assert set(record) == {"nik", "no_kk", "kode_wilayah", "desil", "nama"} and record["nama"]
    bpjs = api.search(api.token("bpjs"), _predicate(("program", "eq", "pbi_jk"), size=5)).json()
    assert "nama" not in bpjs["message"]["search_response"][0]["data"]["reg_records"][0]
    # one person, among the caller's own programs only: a PBI JK recipient who is not in PKH/BPNT is
    # "no record" for Kemensos, exactly like a NIK that does not exist
    only_pbi = api.sql(
        "SELECT nik FROM publish.recipient r WHERE version = 2 AND program = 'pbi_jk' AND NOT EXISTS "
        "(SELECT 1 FROM publish.recipient o WHERE o.version = 2 AND o.nik = r.nik AND o.program IN ('pkh', 'bpnt')) LIMIT 1"
    )[0][0]
    lookup = {
        "reference_id": "one",
        "timestamp": NOW,
        "search_criteria": {
            "query_type": "idtype-value",
            "query": {"type": "NIK", "value": f"{only_pbi:016d}"},
        },
    }
    hidden = api.search(pkh, lookup).json()["message"]["search_response"][0]
    absent = api.search(
        pkh,
        lookup
        | {
            "search_criteria": {
                "query_type": "idtype-value",
                "query": {"type": "NIK", "value": "9999999999999999"},
            }
        },
    ).json()
    assert (
        hidden["data"]["reg_records"] == [] == absent["message"]["search_response"][0]["data"]["reg_records"]
    )
    assert hidden["pagination"]["total_count"] == 0
    found = api.search(api.token("bpjs"), lookup).json()["message"]["search_response"][0]["data"][
        "reg_records"
    ]
    assert [r["program"] for r in found] == ["pbi_jk"] and found[0]["nik"] == f"{only_pbi:016d}"
    file_of_other = httpx.get(
        f"{api.base}/registry/versions/2/programs/pbi_jk.parquet", headers={"Authorization": f"Bearer {pkh}"}
    )
    assert file_of_other.status_code == 403


def test_the_program_file_streams_with_its_manifest_checksum(api):
    token = api.token("bpjs")
    answer = httpx.get(
        f"{api.base}/registry/versions/2/programs/pbi_jk.parquet",
        headers={"Authorization": f"Bearer {token}"},
    )
    manifest = json.loads((api.publish_root / "versions" / "2" / "manifest.json").read_text())
    assert answer.status_code == 200
    assert answer.headers["x-content-sha256"] == manifest["files"]["programs/pbi_jk.parquet"]
    assert pq.read_table(io.BytesIO(answer.content)).num_rows == manifest["programs"]["pbi_jk"]["recipients"]


def test_expired_and_revoked_tokens_get_401(api):
    for client in ("expiring", "temp"):
        made = api.dtsen("api-client", "create", "--id", client, "--name", client, "--programs", "bpnt")
        api.secrets[client] = _printed_secret(made)
    token = api.token("expiring")
    assert api.search(token, _predicate(("desil", "ge", 1), size=1)).status_code == 200
    api.sql("UPDATE api.token SET expires_at = now() - interval '1 second' WHERE client_id = 'expiring'")
    expired = api.search(token, _predicate(("desil", "ge", 1), size=1))
    assert expired.status_code == 401 and expired.json()["errors"][0]["code"] == "err.request.unauthorized"
    live = api.token("temp")
    assert api.search(live, _predicate(("desil", "ge", 1), size=1)).status_code == 200
    assert api.dtsen("api-client", "revoke", "--id", "temp").returncode == 0
    assert api.search(live, _predicate(("desil", "ge", 1), size=1)).status_code == 401
    refused = httpx.post(
        f"{api.base}/oauth2/client/token",
        data={"grant_type": "client_credentials", "client_id": "temp", "client_secret": api.secrets["temp"]},
    )
    assert refused.status_code == 401 and refused.json() == {"error": "invalid_client"}


def test_bad_requests_get_clear_errors(api):
    token = api.token("bpjs")
    headers = {"Authorization": f"Bearer {token}"}
    broken = httpx.post(f"{api.base}/registry/sync/search", json={"header": {}}, headers=headers)
    assert broken.status_code == 400 and broken.json()["errors"][0]["code"] == "err.request.bad"
    not_json = httpx.post(f"{api.base}/registry/sync/search", content=b"x", headers=headers)
    assert not_json.status_code == 415
    too_big = api.search(token, _predicate(size=5000))
    # over DTSEN_API_MAX_PAGE_SIZE: that item is rejected, as the docs say of every item (issue 24)
    rejected = too_big.json()["message"]["search_response"][0]
    assert too_big.status_code == 200 and rejected["status_reason_code"] == "rjct.pagination.invalid"
    unknown_version = api.search(token, _predicate(("version", "eq", 99)))
    assert unknown_version.status_code == 404
    no_token = httpx.post(f"{api.base}/registry/sync/search", json=_envelope(_predicate()))
    assert no_token.status_code == 401


def test_a_client_over_its_rate_gets_429(api):
    token = api.token("slow")  # two requests a minute: the token request does not count
    codes = [api.search(token, _predicate(("desil", "ge", 1), size=1)).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:]


def test_every_response_with_personal_data_is_in_the_disclosure_log(api):
    token = api.token("kemensos")
    before = api.sql("SELECT count(*) FROM api.disclosure WHERE client_id = 'kemensos'")[0][0]
    answer = api.search(token, _predicate(("program", "eq", "pkh"), size=7)).json()
    niks = [r["nik"] for r in answer["message"]["search_response"][0]["data"]["reg_records"]]
    assert len(niks) == 7
    rows = api.sql(
        "SELECT records, cardinality(person_keys), request::text FROM api.disclosure WHERE client_id = 'kemensos' "
        "ORDER BY disclosure_pk DESC LIMIT 1"
    )
    assert api.sql("SELECT count(*) FROM api.disclosure WHERE client_id = 'kemensos'")[0][0] == before + 1
    assert rows[0][:2] == (7, 7) and not any(n in rows[0][2] for n in niks)  # the log holds no NIK
    listed = api.dtsen("disclosures", "--client", "kemensos")
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == before + 1
    who = api.dtsen("disclosures", "--nik", niks[0])
    clients = {json.loads(line)["client"] for line in who.stdout.splitlines()}
    assert "kemensos" in clients
    with pytest.raises(psycopg.errors.RaiseException):
        api.sql("DELETE FROM api.disclosure")
    # a scope without the NIK still discloses persons: the log still says whose records went out
    made = api.dtsen(
        "api-client",
        "create",
        "--id",
        "nonik",
        "--name",
        "nonik",
        "--programs",
        "pbi_jk",
        "--fields",
        "kode_wilayah,desil",
    )
    api.secrets["nonik"] = _printed_secret(made)
    records = api.search(api.token("nonik"), _predicate(("desil", "ge", 1), size=3)).json()["message"][
        "search_response"
    ][0]["data"]["reg_records"]
    assert [set(r) for r in records] == [{"kode_wilayah", "desil"}] * 3
    assert api.sql(
        "SELECT records, cardinality(person_keys) FROM api.disclosure WHERE client_id = 'nonik'"
    ) == [(3, 3)]


def test_a_subscriber_is_called_back_signed_and_once_when_a_version_is_announced(api):
    receiver, receiver_url, calls = start_webhook_receiver()
    try:
        envelope = _envelope() | {
            "header": _envelope()["header"] | {"action": "subscribe", "sender_uri": f"{receiver_url}/dtsen"},
            "message": {
                "transaction_id": "sub-1",
                "subscribe_request": [
                    {
                        "reference_id": "s1",
                        "timestamp": NOW,
                        "subscribe_criteria": {
                            "reg_event_type": "dtsen:VersionPublished",
                            "notify_record_type": "pbi_jk",
                        },
                    }
                ],
            },
        }
        token = api.token("bpjs")
        answer = httpx.post(
            f"{api.base}/registry/sync/subscribe", json=envelope, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        subscription = answer.json()["message"]["subscribe_response"][0]["subscriptions"][0]
        assert subscription["notify_record_type"] == "pbi_jk"
        announce = [
            sys.executable,
            "-c",
            "from dtsen.round import NOTIFY_PROGRAMS, RoundContext; "
            "print(NOTIFY_PROGRAMS.run(RoundContext.create('', version=2)))",
        ]
        for _ in range(2):  # the second announcement of the same version reaches nobody again
            done = subprocess.run(announce, env=api.env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr[-2000:]
        assert len(calls) == 1
        from dtsen.notify.webhook import verify

        call = calls[0]
        assert verify(subscription["secret"].encode(), call["timestamp"], call["body"], call["signature"])
        payload = json.loads(call["body"])
        assert payload["version"] == 2 and payload["program"] == "pbi_jk"
        assert payload["subscription_code"] == subscription["code"]
        assert not any(c.isdigit() and len(c) == 16 for c in json.dumps(payload).split('"'))  # no NIK
        ended = httpx.post(
            f"{api.base}/registry/sync/unsubscribe",
            json=envelope
            | {
                "header": envelope["header"] | {"action": "unsubscribe"},
                "message": {
                    "transaction_id": "u-1",
                    "timestamp": NOW,
                    "subscription_codes": [subscription["code"]],
                },
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert ended.status_code == 200 and ended.json()["message"]["subscription_status"] == [
            {"code": subscription["code"], "status": "unsubscribe"}
        ]
    finally:
        receiver.shutdown()
