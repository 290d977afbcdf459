"""Least privilege in the warehouse (issue 24, item 2): each component connects with a login of its own
role, and none of them can touch the disclosure log beyond what it must.

`dtsen db migrate`, run as the owner with each component's URL configured, makes the three logins
(members of dtsen_round, dtsen_api and dtsen_cockpit). Then, with those real logins: the round runs
three sample rounds end to end (partitions, statistics, retention, publication), the registry API answers
a token, a search and a file download, the cockpit renders every page; and each login is refused, one
statement at a time, everything that would rewrite, hide or read what it must not (deleting or
updating the disclosure log, switching its triggers off, redefining its trigger function, dropping it,
running programs with COPY ... TO PROGRAM)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.engine import make_url

from dtsen.paths import SAMPLE_DIR
from dtsen.warehouse import engine
from tests.factories import run_steps

ROLES = {"round": "dtsen_round", "api": "dtsen_api", "cockpit": "dtsen_cockpit"}
URL_SETTING = {
    "round": "DTSEN_DATABASE_URL",
    "api": "DTSEN_API_DATABASE_URL",
    "cockpit": "DTSEN_COCKPIT_DATABASE_URL",
}
KEY = "warehouse-roles-test-disclosure-key"

# What an attacker holding a component's login tried on the disclosure log and the server (issue 24).
ATTACKS_ON_THE_LOG = {
    "delete a disclosure": "DELETE FROM api.disclosure",
    "update a disclosure": "UPDATE api.disclosure SET records = 0",
    "truncate the log": "TRUNCATE api.disclosure",
    "switch triggers off for the session": "SET session_replication_role = replica",
    "disable the append-only trigger": "ALTER TABLE api.disclosure DISABLE TRIGGER disclosure_append_only",
    "drop the append-only trigger": "DROP TRIGGER disclosure_append_only ON api.disclosure",
    "redefine the trigger function": "CREATE OR REPLACE FUNCTION api.refuse_change() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
    "drop the log": "DROP TABLE api.disclosure",
    "rename the log": "ALTER TABLE api.disclosure RENAME TO gone",
    "run a program on the server": "COPY (SELECT 1) TO PROGRAM 'true'",
    "write a file on the server": "COPY (SELECT 1) TO '/tmp/dtsen-roles-test'",
    "become a superuser": "ALTER ROLE CURRENT_USER SUPERUSER",
    "create a role": "CREATE ROLE dtsen_roles_test_intruder",
}


def _login_url(owner_url: str, user: str, password: str) -> str:
    return make_url(owner_url).set(username=user, password=password).render_as_string(hide_password=False)


class Warehouse:
    def __init__(self, owner_url: str, logins: dict[str, str], urls: dict[str, str], migrated: str):
        self.owner_url, self.logins, self.urls, self.migrated = owner_url, logins, urls, migrated

    def owner(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.owner_url), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def connect(self, component: str) -> psycopg.Connection:
        return psycopg.connect(engine.libpq_conninfo(self.urls[component]))

    def refused(self, component: str, statements: dict[str, str]) -> dict[str, str]:
        """Each statement run by the component's login in a transaction of its own (rolled back either
        way): the ones that were NOT refused for lack of privilege, with what happened."""
        allowed = {}
        with self.connect(component) as conn:
            for what, statement in statements.items():
                try:
                    with conn.transaction(force_rollback=True):
                        conn.execute(statement)
                    allowed[what] = "ran"
                except errors.InsufficientPrivilege:
                    pass
                except psycopg.Error as exc:
                    allowed[what] = f"{type(exc).__name__}: {exc.sqlstate}"
        return allowed


@pytest.fixture(scope="module")
def warehouse(module_warehouse, tmp_path_factory):
    """The module's warehouse with the three component logins, made by `dtsen db migrate` as the owner."""
    owner_url = os.environ["DTSEN_DATABASE_URL"]  # the server's superuser: the owner, as in compose
    stem = f"dtsen_test_{os.getpid()}"
    logins = {c: f"{stem}_{c}_login" for c in ROLES}
    passwords = {c: secrets.token_hex(16) for c in ROLES}
    urls = {c: _login_url(owner_url, logins[c], passwords[c]) for c in ROLES}
    env = os.environ | {URL_SETTING[c]: urls[c] for c in ROLES} | {"DTSEN_OWNER_DATABASE_URL": owner_url}
    env["DTSEN_PUBLISH_ROOT"] = str(tmp_path_factory.mktemp("publish"))
    migrated = subprocess.run(
        [sys.executable, "-m", "dtsen", "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr
    site = Warehouse(owner_url, logins, urls, migrated.stdout)
    try:
        yield site
    finally:
        for login in logins.values():
            site.owner(f'DROP OWNED BY "{login}"')  # noqa: S608 (test role names)
            with psycopg.connect(engine.libpq_conninfo(owner_url), autocommit=True) as conn:
                conn.execute(f'DROP ROLE IF EXISTS "{login}"')


@pytest.fixture(scope="module")
def rounds(warehouse, tmp_path_factory):
    """Three sample rounds, every step, as the round's login (the owner only looks afterwards); staging
    is kept for one round, so the third round drops the first's partitions."""
    publish = tmp_path_factory.mktemp("publish")
    results = {}
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_DATABASE_URL", warehouse.urls["round"])
        env.setenv("DTSEN_STAGING_KEEP_ROUNDS", "1")
        for round_id in ("2026-Q1", "2026-Q2", "2026-Q3"):
            results[round_id] = run_steps(round_id, landing_root=SAMPLE_DIR / "landing", publish_root=publish)
    return results, publish


def test_dtsen_db_migrate_makes_each_components_login_a_member_of_its_role_only(warehouse):
    for component, role in ROLES.items():
        login = warehouse.logins[component]
        assert f"login {login} is a member of {role} (password set)" in warehouse.migrated
        attributes, password = warehouse.owner(
            "SELECT ARRAY[rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            "rolinherit], rolpassword FROM pg_authid WHERE rolname = %s",
            (login,),
        )[0]
        assert attributes == [True, False, False, False, False, False, True], component
        assert password.startswith("SCRAM-SHA-256$")  # a verifier: the password never reached the server
        groups = warehouse.owner(
            "SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = %s::regrole", (login,)
        )
        assert groups == [(role,)], component


def test_no_component_role_is_a_superuser_an_owner_or_a_member_of_the_owner(warehouse):
    owner = warehouse.owner("SELECT current_user")[0][0]
    for role in ROLES.values():
        attributes = warehouse.owner(
            "SELECT ARRAY[rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls] "
            "FROM pg_roles WHERE rolname = %s",
            (role,),
        )[0][0]
        assert attributes == [False] * 6, role
        assert not warehouse.owner("SELECT pg_has_role(%s, %s, 'MEMBER')", (role, owner))[0][0]
    owned = warehouse.owner(
        "SELECT c.relname, r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = ANY (%s) OR r.rolname LIKE 'dtsen\\_test\\_%%'",
        (list(ROLES.values()),),
    )
    assert owned == []


def test_the_api_login_serves_and_appends_to_the_log_but_cannot_change_or_read_it(warehouse, rounds):
    warehouse.owner(
        "INSERT INTO api.client (client_id, name, secret_hash, programs, fields) "
        "VALUES ('roles-test', 'roles test', 'x', '{pbi_jk}', '{nik}') ON CONFLICT DO NOTHING"
    )
    with warehouse.connect("api") as conn:
        assert conn.execute("SELECT count(*) FROM publish.version").fetchone()[0] >= 1
        conn.execute(
            # with the fields that went out (migration 0032): the table's INSERT grant covers the column
            "INSERT INTO api.disclosure (client_id, kind, request, version, program, records, fields) "
            "VALUES ('roles-test', 'search', '{}', 1, 'pbi_jk', 0, '{nik}')"
        )
        conn.execute("SELECT count(*) FROM api.txn WHERE delivery = 'pending'")  # the retry loop's read
        conn.commit()
    before = warehouse.owner("SELECT count(*) FROM api.disclosure")[0][0]
    assert (
        warehouse.refused(
            "api",
            ATTACKS_ON_THE_LOG
            | {
                "read who got what": "SELECT * FROM api.disclosure",
                "read the registry": "SELECT * FROM registry.person LIMIT 1",
                "read the staged deliveries": "SELECT * FROM staging.pemda_anggota LIMIT 1",
                "read the Dukcapil reference": "SELECT * FROM ref.dukcapil LIMIT 1",
                "create a client for itself": "INSERT INTO api.client (client_id, name, secret_hash, programs, "
                "fields) VALUES ('intruder', 'x', 'x', '{pbi_jk}', '{nik}')",
                "widen a client's scope": "UPDATE api.client SET programs = '{pbi_jk,pkh,bpnt}'",
                "change a version": "UPDATE publish.version SET status = 'DISCARDED'",
                # its asynchronous transactions (migration 0034): kept and updated, never removed
                "delete an async transaction": "DELETE FROM api.txn",
                "truncate the async transactions": "TRUNCATE api.txn",
                "drop a partition through the round's function": "SELECT staging.drop_round_partitions(1::smallint)",
            },
        )
        == {}
    )
    assert warehouse.owner("SELECT count(*) FROM api.disclosure")[0][0] == before >= 1


def test_the_round_login_cannot_touch_the_disclosure_log(warehouse, rounds):
    assert (
        warehouse.refused(
            "round",
            ATTACKS_ON_THE_LOG
            | {
                "append to the log": "INSERT INTO api.disclosure (client_id, kind, request, version, program, "
                "records) VALUES ('roles-test', 'search', '{}', 1, 'pbi_jk', 0)",
                "read who got what": "SELECT * FROM api.disclosure",
                "read the clients' secret hashes": "SELECT secret_hash FROM api.client",
                "create a client": "INSERT INTO api.client (client_id, name, secret_hash, programs, fields) "
                "VALUES ('intruder', 'x', 'x', '{pbi_jk}', '{nik}')",
                "forget an approval decision": "DELETE FROM publish.approval_decision",
                "drop a registry table": "DROP TABLE registry.person",
                "create a table": "CREATE TABLE registry.intruder (x int)",
                "empty the registry at once": "TRUNCATE registry.person",
            },
        )
        == {}
    )


def test_the_cockpit_login_only_reads(warehouse, rounds):
    with warehouse.connect("cockpit") as conn:
        assert conn.execute("SELECT count(*) FROM ingest.round").fetchone()[0] == 3
    assert (
        warehouse.refused(
            "cockpit",
            ATTACKS_ON_THE_LOG
            | {
                "append to the log": "INSERT INTO api.disclosure (client_id, kind, request, version, program, "
                "records) VALUES ('roles-test', 'search', '{}', 1, 'pbi_jk', 0)",
                "read who got what": "SELECT * FROM api.disclosure",
                "read the registry": "SELECT * FROM registry.person LIMIT 1",
                "read the Dukcapil reference": "SELECT * FROM ref.dukcapil LIMIT 1",
                "read the clients": "SELECT * FROM api.client",
                "change a round": "UPDATE ingest.round SET status = 'OPEN'",
                "record an approval": "INSERT INTO publish.approval_decision (version, outcome, decided_by, "
                "channel) VALUES (1, 'APPROVED', 'x', 'cli')",
            },
        )
        == {}
    )


def test_the_round_login_runs_whole_rounds_with_statistics_and_retention_by_the_owners_functions(
    warehouse, rounds
):
    results, publish = rounds
    assert all(r["publish"]["version"] for r in results.values()), {
        k: r.get("publish") for k, r in results.items()
    }
    assert sorted(p.name for p in (publish / "versions").iterdir()) == ["1", "2", "3"]
    # meta.analyze ran as the owner: the registry and the round's partitions have statistics
    analyzed = dict(
        warehouse.owner(
            "SELECT relname, last_analyze IS NOT NULL FROM pg_stat_user_tables "
            "WHERE relname IN ('person_p0', 'family_p0', 'pemda_anggota_r3', 'rejection_r3')"
        )
    )
    assert analyzed == {"person_p0": True, "family_p0": True, "pemda_anggota_r3": True, "rejection_r3": True}
    # retention kept one round: the first round's staging partitions were dropped by the third
    kept = {
        r
        for (r,) in warehouse.owner(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'pemda_anggota_r%%'"
        )
    }
    assert kept == {"pemda_anggota_r2", "pemda_anggota_r3"}
    snapshots = {
        r
        for (r,) in warehouse.owner(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE 'dukcapil_penduduk_s%%'"
        )
    }
    assert snapshots == {"dukcapil_penduduk_s2", "dukcapil_penduduk_s3"}  # pruned before the new one loads
    # the per-program views are the owner's, made by its function
    views = warehouse.owner(
        "SELECT viewname, viewowner FROM pg_views WHERE schemaname = 'publish' AND viewname LIKE 'recipient\\_%%' "
        "AND viewname NOT IN ('recipient_current', 'recipient_published')"
    )
    owner = warehouse.owner("SELECT current_user")[0][0]
    assert views and {v[1] for v in views} == {owner}


def test_the_registry_api_answers_with_its_own_login(warehouse, rounds, monkeypatch):
    from fastapi.testclient import TestClient

    from dtsen.api import clients
    from dtsen.api.app import create_app

    with psycopg.connect(engine.libpq_conninfo(warehouse.owner_url)) as conn, conn.transaction():
        secret = clients.create_client(
            conn, "roles-api", "roles api", ["pbi_jk"], ["nik", "kode_wilayah"], 600, {"pbi_jk"}
        )
    monkeypatch.setenv("DTSEN_API_DATABASE_URL", warehouse.urls["api"])
    monkeypatch.setenv("DTSEN_DATABASE_URL", "postgresql://nobody:wrong@127.0.0.1:1/none")  # never used
    monkeypatch.setenv("DTSEN_API_DISCLOSURE_KEY", KEY)
    monkeypatch.setenv("DTSEN_PUBLISH_ROOT", str(rounds[1]))
    before = warehouse.owner("SELECT count(*) FROM api.disclosure WHERE client_id = 'roles-api'")[0][0]
    with TestClient(create_app()) as http:
        token = http.post(
            "/oauth2/client/token",
            data={"grant_type": "client_credentials", "client_id": "roles-api", "client_secret": secret},
        )
        assert token.status_code == 200, token.text
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        search = http.post(
            "/registry/sync/search",
            headers=auth,
            json={
                "header": {
                    "version": "1.0.0",
                    "message_id": "m-1",
                    "message_ts": "2026-12-03T10:00:00+07:00",
                    "action": "search",
                    "sender_id": "roles-api",
                    "total_count": 1,
                },
                "message": {
                    "transaction_id": "t-1",
                    "search_request": [
                        {
                            "reference_id": "r-1",
                            "timestamp": "2026-12-03T10:00:00+07:00",
                            "search_criteria": {
                                "query_type": "predicate",
                                "query": [
                                    {
                                        "seq_num": 1,
                                        "expression1": {
                                            "attribute_name": "program",
                                            "operator": "eq",
                                            "attribute_value": "pbi_jk",
                                        },
                                    }
                                ],
                                "pagination": {"page_size": 10, "page_number": 1},
                            },
                        }
                    ],
                },
            },
        )
        assert search.status_code == 200, search.text
        assert search.json()["message"]["search_response"][0]["data"]["reg_records"]
        assert http.get("/registry/versions", headers=auth).status_code == 200
    after = warehouse.owner("SELECT count(*) FROM api.disclosure WHERE client_id = 'roles-api'")[0][0]
    assert after == before + 1
    sessions = warehouse.owner(
        "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'dtsen-api' "
        "AND datname = current_database()"
    )
    assert set(sessions) <= {(warehouse.logins["api"],)}


def test_the_cockpit_renders_every_page_with_its_own_login(warehouse, rounds, monkeypatch):
    from fastapi.testclient import TestClient

    from dtsen.cockpit.app import create_app

    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", warehouse.urls["cockpit"])
    monkeypatch.setenv("DTSEN_DATABASE_URL", "postgresql://nobody:wrong@127.0.0.1:1/none")  # never used
    kode = warehouse.owner("SELECT max(kode_wilayah) FROM ingest.submission")[0][0]
    with TestClient(create_app(reader=lambda: None)) as http:
        for path in (
            "/api/rounds",
            "/api/rounds/2026-Q1",
            f"/api/regions/{kode}",
            "/api/versions",
            "/api/versions/2",
            "/api/compare?a=1&b=3",
            "/",
            "/rounds/2026-Q2",
            f"/regions/{kode}",
            "/versions",
            "/versions/3",
            "/compare?a=1&b=3",
        ):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text[:300])


def test_every_owner_function_the_round_may_call_is_the_rounds_only(warehouse):
    definers = warehouse.owner(
        "SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE p.prosecdef AND n.nspname IN ('meta', 'ref', 'ingest', 'staging', 'quality', 'registry', 'publish', 'api')"
    )
    assert len(definers) >= 9
    for function, config in definers:
        assert config == ["search_path=pg_catalog, pg_temp"], function  # nothing of the caller's is resolved
        for role in ("dtsen_api", "dtsen_cockpit"):
            assert not warehouse.owner("SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, function))[
                0
            ][0]
        assert warehouse.owner("SELECT has_function_privilege('dtsen_round', %s, 'EXECUTE')", (function,))[0][
            0
        ]
    refused = warehouse.refused(
        "round", {"analyze a table of the api": "SELECT meta.analyze('api.disclosure')"}
    )
    assert refused == {"analyze a table of the api": "RaiseException: P0001"}
