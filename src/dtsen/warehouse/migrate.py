"""Apply the ordered SQL migrations in sql/migrations/ and seed reference data, idempotently.

Each migration runs in its own transaction under an advisory lock and is recorded in
meta.schema_migration with its sha256; an applied migration whose file later changes is an error
(history is append-only: write a new migration instead).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dtsen import contract
from dtsen.errors import DataError
from dtsen.paths import SQL_DIR
from dtsen.reference import DECREE, LEVEL_BY_LENGTH, WILAYAH_FILE, iter_wilayah_rows, wilayah_sha256

log = logging.getLogger(__name__)

MIGRATIONS_DIR = SQL_DIR / "migrations"
MIGRATION_NAME_RE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
ADVISORY_LOCK_KEY = 0x0D75E1  # "dtsen migrate"; distinct from the merge lock

BOOTSTRAP_SQL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.schema_migration (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now(),
    duration_ms integer NOT NULL
);
"""


class MigrationError(DataError):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME_RE.match(path.name)
        if not match:
            raise MigrationError(f"migration file name not of the form NNNN_name.sql: {path.name}")
        migrations.append(Migration(version=match.group(1), name=path.stem, path=path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migrations share a version number")
    return migrations


@dataclass
class MigrateReport:
    applied: list[str]
    already: list[str]
    reference_loaded: bool
    reference_rows: dict[str, int]


def apply_migrations(
    conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR
) -> tuple[list[str], list[str]]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        conn.execute(BOOTSTRAP_SQL)
    applied, already = [], []
    for migration in discover(directory):
        with conn.transaction():
            # Held to the end of this migration's transaction: concurrent runners queue here.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
            row = conn.execute(
                "SELECT sha256 FROM meta.schema_migration WHERE version = %s", (migration.version,)
            ).fetchone()
            if row is not None:
                if row[0] != migration.sha256:
                    raise MigrationError(
                        f"migration {migration.name} was applied with different content; "
                        "never edit an applied migration, add a new one"
                    )
                already.append(migration.name)
                continue
            started = time.monotonic()
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO meta.schema_migration (version, name, sha256, duration_ms) VALUES (%s, %s, %s, %s)",
                (
                    migration.version,
                    migration.name,
                    migration.sha256,
                    int((time.monotonic() - started) * 1000),
                ),
            )
            applied.append(migration.name)
            log.info("applied migration %s", migration.name)
    return applied, already


def seed_reason_codes(conn: psycopg.Connection) -> None:
    """quality.reason_code mirrors the contract module (the single definition)."""
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO quality.reason_code (code, level, meaning, pesan)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (code) DO UPDATE
                   SET level = EXCLUDED.level, meaning = EXCLUDED.meaning, pesan = EXCLUDED.pesan""",
                [(r.code, r.level.value, r.meaning, r.pesan) for r in contract.REASONS],
            )


def load_reference(
    conn: psycopg.Connection, path: Path = WILAYAH_FILE, *, force: bool = False
) -> dict[str, int] | None:
    """COPY the region codes into ref.*; skipped when the same file (sha256) is already loaded."""
    sha = wilayah_sha256(path)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_KEY,))
        loaded = conn.execute("SELECT sha256 FROM meta.reference_load WHERE name = 'wilayah'").fetchone()
        if loaded and loaded[0] == sha and not force:
            return None
        by_level: dict[str, io.StringIO] = {level: io.StringIO() for level in LEVEL_BY_LENGTH.values()}
        for kode, nama in iter_wilayah_rows(path):
            # Tab-separated COPY text: names never contain tabs, backslashes or newlines (checked).
            if any(ch in nama for ch in "\t\n\\"):
                raise MigrationError("unexpected control character in a region name")
            by_level[LEVEL_BY_LENGTH[len(kode)]].write(f"{kode}\t{nama}\n")
        conn.execute("TRUNCATE ref.desa, ref.kecamatan, ref.kabupaten, ref.provinsi")
        counts = {}
        with conn.cursor() as cur:
            for level in ("provinsi", "kabupaten", "kecamatan", "desa"):
                data = by_level[level].getvalue()
                with cur.copy(f"COPY ref.{level} (kode, nama) FROM STDIN") as copy:
                    copy.write(data)
                counts[level] = data.count("\n")
        conn.execute(
            """INSERT INTO meta.reference_load (name, source, sha256, rows)
               VALUES ('wilayah', %s, %s, %s)
               ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, sha256 = EXCLUDED.sha256,
                   rows = EXCLUDED.rows, loaded_at = now()""",
            (f"{DECREE} via idn-area-data 4.0.1 (ODbL)", sha, sum(counts.values())),
        )
        conn.execute("ANALYZE ref.provinsi, ref.kabupaten, ref.kecamatan, ref.desa")
    return counts


def migrate(conn: psycopg.Connection, *, directory: Path = MIGRATIONS_DIR) -> MigrateReport:
    applied, already = apply_migrations(conn, directory)
    seed_reason_codes(conn)
    counts = load_reference(conn)
    if counts is None:
        row = conn.execute("SELECT rows FROM meta.reference_load WHERE name = 'wilayah'").fetchone()
        reference_rows = {"total": row[0]} if row else {}
    else:
        reference_rows = counts
    return MigrateReport(applied, already, counts is not None, reference_rows)


def require_current_schema(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Refuse to run a round on a warehouse whose migrations are behind (they run at set-up only)."""
    exists = conn.execute("SELECT to_regclass('meta.schema_migration')").fetchone()[0]
    applied = (
        dict(conn.execute("SELECT version, sha256 FROM meta.schema_migration").fetchall()) if exists else {}
    )
    behind = [m.name for m in discover(directory) if m.version not in applied]
    changed = [m.name for m in discover(directory) if m.version in applied and applied[m.version] != m.sha256]
    if behind or changed:
        problem = f"migrations not applied: {', '.join(behind)}" if behind else ""
        if changed:
            problem += ("; " if problem else "") + f"applied with other content: {', '.join(changed)}"
        raise MigrationError(
            f"the warehouse's schema is not this version's ({problem}): run `dtsen db migrate` "
            "(in docker compose, the airflow-init job) before starting a round"
        )
    loaded = conn.execute("SELECT count(*) FROM meta.reference_load WHERE name = 'wilayah'").fetchone()[0]
    if not loaded:
        raise MigrationError(
            "the region codes are not loaded: run `dtsen db migrate` before starting a round"
        )
