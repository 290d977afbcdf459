"""Field teams read their verification cases through the registry API (issue 26, item 3): a client
whose scope is a region's cases (`dtsen api-client create --case-regions`) gets that region's open
cases with what a visit needs (NIK, KK, names, address, reasons, what to check) and nothing of another
region's; a program team's client gets none; every answer is in the disclosure log before it leaves.
A real server process (`dtsen api`), a real HTTP client, a real warehouse after the sample's rounds
2026-Q1 and 2026-Q2 with every family stale after a round (cases in both of the sample's regencies)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import psycopg
import pytest

from dtsen.api.disclosure import person_key
from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import running_registry_api

KEY = "test-disclosure-key"
TEAMS = {"pkh-3674": "3674", "pkh-9407": "9407"}


def _sql(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


@pytest.fixture(scope="module")
def api(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("api-cases")
    warehouse = scratch_database("apicases")
    config = json.loads((PROJECT_ROOT / "config" / "cases.json").read_text())
    config["origins"]["stale"] |= {"rounds": 1, "max_per_round": 0, "due_days": 200}
    (work / "cases.json").write_text(json.dumps(config), encoding="utf-8")
    env = os.environ | {
        "DTSEN_DATABASE_URL": warehouse,
        "DTSEN_LANDING_ROOT": str(SAMPLE_DIR / "landing"),
        "DTSEN_PUBLISH_ROOT": str(work / "publish"),
        "DTSEN_RAW_ROOT": str(work / "raw"),
        "DTSEN_OUTBOX": str(work / "outbox"),
        "DTSEN_CASES_CONFIG": str(work / "cases.json"),
        "DTSEN_API_DISCLOSURE_KEY": KEY,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in (
            "DTSEN_DATABASE_URL",
            "DTSEN_PUBLISH_ROOT",
            "DTSEN_RAW_ROOT",
            "DTSEN_OUTBOX",
            "DTSEN_CASES_CONFIG",
        ):
            patch.setenv(name, env[name])
        from dtsen.round import RoundContext, run_round
        from dtsen.warehouse.migrate import migrate

        with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
            migrate(conn)
        for round_id in ("2026-Q1", "2026-Q2"):
            run_round(RoundContext.create(round_id, landing_root=SAMPLE_DIR / "landing"))
    secrets = {}
    for client, scope in (
        *((c, ("--case-regions", r)) for c, r in TEAMS.items()),
        ("bpjs", ("--programs", "pbi_jk")),
    ):
        made = subprocess.run(
            [sys.executable, "-m", "dtsen", "api-client", "create", "--id", client, "--name", client, *scope],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert made.returncode == 0, made.stderr
        secrets[client] = next(
            line.split()[1] for line in made.stdout.splitlines() if line.startswith("client_secret")
        )
    port = free_port()
    with running_registry_api(env, work / "api.log", port):
        base = f"http://127.0.0.1:{port}"

        def token(client: str) -> dict:
            answer = httpx.post(
                f"{base}/oauth2/client/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": client,
                    "client_secret": secrets[client],
                },
            )
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        yield {"base": base, "warehouse": warehouse, "token": token}


def _all_pages(api, client: str, size: int = 7) -> list[dict]:
    headers, cases, after = api["token"](client), [], 0
    while after is not None:
        answer = httpx.get(
            f"{api['base']}/registry/cases", params={"after": after, "size": size}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        cases += answer.json()["cases"]
        after = answer.json()["next_after"]
    return cases


def test_a_field_team_reads_its_regions_open_cases_with_what_a_visit_needs(api):
    for client, region in TEAMS.items():
        cases = _all_pages(api, client)
        expected = _sql(
            api["warehouse"],
            "SELECT id_kasus, no_kk FROM cases.verification_case WHERE state IN ('OPEN', 'ASSIGNED') "
            "AND starts_with(kode_wilayah, %s) ORDER BY id_kasus",
            (region,),
        )
        assert expected and [(c["id_kasus"], int(c["no_kk"])) for c in cases] == expected
        case = cases[0]
        members = _sql(
            api["warehouse"],
            "SELECT nik, nama FROM publish.anggota WHERE version = 2 AND no_kk = %s ORDER BY hubungan_keluarga, nik",
            (int(case["no_kk"]),),
        )
        assert [(int(m["nik"]), m["nama"]) for m in case["anggota"]] == members
        assert case["alamat"] and case["kode_wilayah"].startswith(region) and case["status"] == "OPEN"
        assert case["alasan"] and len(case["yang_diperiksa"]) == len(case["alasan"])
        assert all(c["kode_wilayah"].startswith(region) for c in cases)


def test_a_field_team_cannot_read_another_regions_case_and_a_program_team_reads_none(api):
    theirs = _all_pages(api, "pkh-9407")[0]["id_kasus"]
    mine = _all_pages(api, "pkh-3674")[0]["id_kasus"]
    headers = api["token"]("pkh-3674")
    base = api["base"]
    other = httpx.get(f"{base}/registry/cases/{theirs}", headers=headers)
    unknown = httpx.get(f"{base}/registry/cases/999999999", headers=headers)
    own = httpx.get(f"{base}/registry/cases/{mine}", headers=headers)
    assert (other.status_code, unknown.status_code, own.status_code) == (404, 404, 200)
    assert other.json() == unknown.json()  # no telling a case elsewhere from none
    program = api["token"]("bpjs")
    assert httpx.get(f"{base}/registry/cases", headers=program).status_code == 403
    assert httpx.get(f"{base}/registry/cases/{mine}", headers=program).status_code == 403
    assert httpx.get(f"{base}/registry/cases").status_code == 401
    # a field team's scope gives it no program's recipients either
    assert httpx.get(f"{base}/registry/versions/2/programs/pbi_jk", headers=headers).status_code in (403, 404)


def test_every_answer_with_a_case_is_in_the_disclosure_log_with_each_members_key(api):
    url = api["warehouse"]
    before = _sql(url, "SELECT coalesce(max(disclosure_pk), 0) FROM api.disclosure")[0][0]
    answer = httpx.get(
        f"{api['base']}/registry/cases", params={"size": 3}, headers=api["token"]("pkh-3674")
    ).json()
    logged = _sql(
        url,
        "SELECT client_id, kind, program, version, records, person_keys, fields, request::text FROM api.disclosure "
        "WHERE disclosure_pk > %s",
        (before,),
    )
    niks = [m["nik"] for c in answer["cases"] for m in c["anggota"]]
    assert len(logged) == 1 and niks
    client, kind, program, version, records, keys, fields, request = logged[0]
    assert (client, kind, program, version, records) == ("pkh-3674", "cases", "cases", 2, len(niks))
    assert [bytes(k) for k in keys] == [person_key(n, KEY.encode()) for n in niks]
    # every personal field that went out: what a visit needs, beyond a recipient list's fields
    assert set(fields) == {
        "nik",
        "no_kk",
        "kode_wilayah",
        "alamat",
        "nama",
        "jenis_kelamin",
        "tanggal_lahir",
        "hubungan_keluarga",
    }
    assert set(fields) >= set(answer["cases"][0]["anggota"][0]) | {"no_kk", "kode_wilayah", "alamat"}
    assert not any(n in request for n in niks)
