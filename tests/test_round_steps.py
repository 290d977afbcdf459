"""The round is one ordered list of steps: a dry run of it leaves the registry exactly as it was, it
refuses a warehouse set up for another version, and nothing below a step ends its transaction."""

from __future__ import annotations

import ast
import re

import psycopg
import pytest

from dtsen.paths import PROJECT_ROOT, SAMPLE_DIR
from dtsen.warehouse import engine
from dtsen.warehouse.migrate import MigrationError
from tests.factories import run_steps

LANDING = SAMPLE_DIR / "landing"
REGISTRY = """
SELECT (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.person t),
       (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.family t),
       (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.membership t),
       (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM registry.field_change t),
       (SELECT count(*) FROM publish.version), (SELECT count(*) FROM publish.anggota),
       (SELECT count(*) FROM quality.rejection WHERE reason_code = 'CONFLICT_LOST')
"""


def test_a_dry_run_leaves_the_registry_exactly_as_it_was_and_the_real_run_follows(module_warehouse, tmp_path):
    conn = module_warehouse
    publish = tmp_path / "publish"
    run_steps("2026-Q1", landing_root=LANDING, publish_root=publish)
    before = conn.execute(REGISTRY).fetchone()
    conn.commit()

    dry = run_steps("2026-Q2", landing_root=LANDING, publish_root=publish, dry_run=True)
    rehearsal = dry["rank_and_audit"]
    assert rehearsal["dry_run"] and rehearsal["version"] is None and rehearsal["rolled_back_version"] == 2
    assert rehearsal["status"] == "AUDITED" and rehearsal["changes"]["persons added"] > 0  # what it would do
    assert dry["merge"] == {"round_id": "2026-Q2", "dry_run": True, "merged": False}
    assert "skipped" in dry["publish"] and dry["notify_regions"]["emails_sent"] == 0
    assert conn.execute(REGISTRY).fetchone() == before
    assert conn.execute("SELECT status FROM ingest.round WHERE round_id = '2026-Q2'").fetchone() == (
        "VALIDATED",
    )
    assert not (publish / "versions" / "2").exists()
    conn.commit()

    real = run_steps("2026-Q2", landing_root=LANDING, publish_root=publish)
    assert real["merge"]["changes"] == rehearsal["changes"]  # the rehearsal was the real thing
    assert real["publish"]["version"] == 2 and (publish / "versions" / "2" / "manifest.json").exists()


def test_a_round_refuses_a_warehouse_whose_migrations_are_behind(scratch_database, tmp_path, monkeypatch):
    url = scratch_database("behind")
    monkeypatch.setenv("DTSEN_DATABASE_URL", url)
    from dtsen.warehouse.migrate import migrate

    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        migrate(conn)
        conn.execute("DELETE FROM meta.schema_migration WHERE version = '0019'")
    with pytest.raises(MigrationError, match="0019_round_merge_summary.*dtsen db migrate"):
        run_steps("2026-Q1", landing_root=LANDING, publish_root=tmp_path, until="open_round")
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        assert conn.execute("SELECT count(*) FROM ingest.round").fetchone() == (0,)  # nothing registered


# The modules allowed to end a transaction: the steps themselves, set-up commands (migrations, and the
# components' logins `dtsen db migrate` makes, each in its own transaction), the notification log
# (each delivery is recorded, committed, before it is sent), and the registry API's connection pool
# and client commands (each request or command is its own transaction).
OWNERS = {
    "round.py",
    "cli.py",
    "warehouse/migrate.py",
    "warehouse/roles.py",
    "notify/deliver.py",
    "api/app.py",
    "api/deps.py",
    "api/cli.py",
    "model/cli.py",
    "model/cycle.py",
    "cases/cli.py",
    "publish/in_sessions.py",  # the connections it opens itself: the candidate's sessions
    "warehouse/prepared.py",  # the same: its writer sessions, each prepared
    "publish/audit_shares.py",  # the same: clearing the audit's scratch before its share sessions
    "warehouse/sessions.py",  # the same: a session per share, each committing its own work
}
SAVEPOINT = "# savepoint"


def test_nothing_below_a_step_commits_or_rolls_back_the_connection_it_was_handed():
    offenders = []
    for path in sorted((PROJECT_ROOT / "src" / "dtsen").rglob("*.py")):
        relative = path.relative_to(PROJECT_ROOT / "src" / "dtsen").as_posix()
        if relative in OWNERS:
            continue
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            called = node.func if isinstance(node, ast.Call) else None
            if isinstance(called, ast.Attribute) and called.attr in ("commit", "rollback", "transaction"):
                line = lines[node.lineno - 1]
                if called.attr == "transaction" and SAVEPOINT in line:
                    continue  # a savepoint inside the step's transaction, to recover from a refused file
                offenders.append(f"{relative}:{node.lineno}: {line.strip()}")
    assert offenders == []


def test_the_dag_files_hold_no_sql_no_connection_and_no_email_building():
    for path in (PROJECT_ROOT / "dags").glob("*.py"):
        text = path.read_text()
        assert not re.search(
            r"\b(SELECT|INSERT|UPDATE|DELETE)\b|engine\.connect|psycopg|Email\(|send_email\(", text
        ), path.name
