"""What a program team gets of a published version (issue 24, items 1 and 8): a program file with
the columns of its field scope only, with that file's own checksum, every disclosure logged with the
fields that went out, and a manifest that tells it about its own programs only.

A real `dtsen api` process and a real warehouse after one published sample round. Clients: `narrow`
(PKH, nik and kode_wilayah), `nameonly` (PKH, nama: no column of the file), `bpjs` (PBI JK)."""

from __future__ import annotations

import hashlib
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
from tests.factories import running_registry_api

NOW = "2026-12-03T10:00:00+07:00"


class Site:
    def __init__(self, base: str, warehouse: str, publish_root) -> None:
        self.base, self.warehouse, self.publish_root = base, warehouse, publish_root
        self.secrets: dict[str, str] = {}

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.warehouse), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def auth(self, client: str) -> dict:
        answer = httpx.post(
            f"{self.base}/oauth2/client/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": self.secrets[client],
            },
        )
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    def last_disclosure(self, client: str) -> tuple:
        return self.sql(
            "SELECT kind, fields, file_sha256, records FROM api.disclosure WHERE client_id = %s "
            "ORDER BY disclosure_pk DESC LIMIT 1",
            (client,),
        )[0]

    def manifest_file(self) -> dict:
        return json.loads((self.publish_root / "versions" / "1" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def site(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("scoped-files")
    warehouse = scratch_database("scoped_files")
    env = os.environ | {
        "DTSEN_DATABASE_URL": warehouse,
        "DTSEN_LANDING_ROOT": str(SAMPLE_DIR / "landing"),
        "DTSEN_PUBLISH_ROOT": str(work / "publish"),
        "DTSEN_RAW_ROOT": str(work / "raw"),
        "DTSEN_OUTBOX": str(work / "outbox"),
        "DTSEN_API_DISCLOSURE_KEY": "test-disclosure-key",
        "DTSEN_CALLBACK_SIGNING_KEY": "test-callback-signing-key",
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

        run_round(RoundContext.create("2026-Q1"))
    port = free_port()
    here = Site(f"http://127.0.0.1:{port}", warehouse, work / "publish")
    for client, programs, fields in (
        ("narrow", "pkh", "nik,kode_wilayah"),
        ("nameonly", "pkh", "nama"),
        ("bpjs", "pbi_jk", "nik,no_kk,kode_wilayah,desil,prioritas"),
    ):
        made = subprocess.run(
            [sys.executable, "-m", "dtsen", "api-client", "create", "--id", client, "--name", client]
            + ["--programs", programs, "--fields", fields],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        here.secrets[client] = next(
            line.split()[1] for line in made.stdout.splitlines() if line.startswith("client_secret")
        )
    with running_registry_api(env, work / "api.log", port):
        yield here


def test_a_narrow_scope_downloads_only_its_columns_with_their_own_checksum_and_the_log_says_which(site):
    auth = site.auth("narrow")
    answer = httpx.get(f"{site.base}/registry/versions/1/programs/pkh.parquet", headers=auth, timeout=60)
    assert answer.status_code == 200, answer.text
    table = pq.read_table(io.BytesIO(answer.content))
    assert table.column_names == ["nik", "kode_wilayah"]  # no no_kk, desil, prioritas, komponen
    published = pq.read_table(site.publish_root / "versions" / "1" / "programs" / "pkh.parquet")
    assert table.to_pylist() == published.select(["nik", "kode_wilayah"]).to_pylist()
    digest = hashlib.sha256(answer.content).hexdigest()
    assert answer.headers["x-content-sha256"] == digest
    assert answer.headers["content-length"] == str(len(answer.content))
    assert digest != site.manifest_file()["files"]["programs/pkh.parquet"]  # not the whole file
    assert site.last_disclosure("narrow") == ("file", ["nik", "kode_wilayah"], digest, published.num_rows)
    again = httpx.get(f"{site.base}/registry/versions/1/programs/pkh.parquet", headers=auth, timeout=60)
    assert again.content == answer.content and again.headers["x-content-sha256"] == digest


def test_a_scope_with_no_column_of_the_file_is_refused_and_nothing_is_disclosed(site):
    before = site.sql("SELECT count(*) FROM api.disclosure WHERE client_id = 'nameonly'")[0][0]
    answer = httpx.get(
        f"{site.base}/registry/versions/1/programs/pkh.parquet", headers=site.auth("nameonly"), timeout=60
    )
    assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "err.request.forbidden"
    assert b"PAR1" not in answer.content
    assert site.sql("SELECT count(*) FROM api.disclosure WHERE client_id = 'nameonly'")[0][0] == before


def test_every_search_disclosure_records_the_fields_that_went_out(site):
    auth = site.auth("narrow")
    envelope = {
        "signature": "",
        "header": {
            "version": "1.0.0",
            "message_id": "m-1",
            "message_ts": NOW,
            "action": "search",
            "sender_id": "narrow",
            "total_count": 1,
        },
        "message": {"transaction_id": "t-1", "search_request": []},
    }
    predicate = {
        "reference_id": "page",
        "timestamp": NOW,
        "search_criteria": {
            "query_type": "predicate",
            "query": [
                {
                    "seq_num": 1,
                    "expression1": {"attribute_name": "program", "operator": "eq", "attribute_value": "pkh"},
                }
            ],
            "pagination": {"page_size": 5, "page_number": 1},
        },
    }
    nik = site.sql("SELECT nik FROM publish.recipient WHERE version = 1 AND program = 'pkh' LIMIT 1")[0][0]
    lookup = {
        "reference_id": "one",
        "timestamp": NOW,
        "search_criteria": {"query_type": "idtype-value", "query": {"type": "NIK", "value": f"{nik:016d}"}},
    }
    for item in (predicate, lookup):
        envelope["message"]["search_request"] = [item]
        answer = httpx.post(f"{site.base}/registry/sync/search", json=envelope, headers=auth, timeout=60)
        records = answer.json()["message"]["search_response"][0]["data"]["reg_records"]
        assert records and set(records[0]) - {"program"} == {"nik", "kode_wilayah"}
        kind, fields, _, _ = site.last_disclosure("narrow")
        assert (kind, fields) == ("search", ["nik", "kode_wilayah"])


def test_the_manifest_tells_a_program_team_of_its_own_file_only(site):
    auth = site.auth("bpjs")
    answer = httpx.get(f"{site.base}/registry/versions/1/manifest", headers=auth)
    assert answer.status_code == 200, answer.text
    view = answer.json()
    full = site.manifest_file()
    assert set(view) == {
        "version",
        "published_at",
        "ranking_model",
        "programs",
    }  # no integrity, audit, counts
    assert view["version"] == 1 and view["ranking_model"]["version"] == full["ranking_model"]["version"]
    assert list(view["programs"]) == ["pbi_jk"]
    mine = view["programs"]["pbi_jk"]
    assert mine["recipients"] == full["programs"]["pbi_jk"]["recipients"]
    assert mine["columns"] == ["nik", "no_kk", "kode_wilayah", "desil", "prioritas"]
    download = httpx.get(f"{site.base}{mine['file']}", headers=auth, timeout=60)
    assert (
        mine["sha256"] == download.headers["x-content-sha256"] == hashlib.sha256(download.content).hexdigest()
    )
    approver = (full.get("audit") or {}).get("approved_by")
    for secret in ("integrity", "approved_by", "individuals", "families", "sekolah_rakyat", "pkh") + (
        (approver,) if approver else ()
    ):
        assert secret not in answer.text
