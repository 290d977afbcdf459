"""Build a candidate version: freeze the merged registry, rank families, select program recipients.

One transaction: a crash leaves no half-built candidate. Building the candidate of a round that
already has one (not discarded) returns that one: re-running a round never makes a second version.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from dtsen.errors import DataError
from dtsen.programs import ProgramSet
from dtsen.rank.model import RankingModel, family_features_query
from dtsen.sqlfiles import statements

log = logging.getLogger(__name__)

PUBLISH_LOCK_KEY = 0x0D75E4  # one candidate build / publication at a time


class CandidateError(DataError):
    pass


@dataclass
class CandidateSummary:
    version: int
    round_id: str
    status: str
    created_now: bool
    counts: dict = field(default_factory=dict)
    programs: dict = field(default_factory=dict)
    step_seconds: dict[str, float] = field(default_factory=dict)


def version_members(version: int, no_kk: int | None = None) -> str:
    """A version's members (or one family's) as a relation for the feature and eligibility SQL."""
    family = f" AND no_kk = {int(no_kk)}" if no_kk is not None else ""
    return f"(SELECT * FROM publish.anggota WHERE version = {int(version)}{family})"  # noqa: S608 (ints)


def rank_statement(model: RankingModel, version: int) -> str:
    """family_score: each open family's score: BPS's recent measurement, else the model's prediction."""
    score = model.score_sql()
    select = f"""f.no_kk, a.jumlah_anggota,
        CASE WHEN {_bps_recent(model)} THEN ln(f.pengeluaran_per_kapita::float8) ELSE {score} END AS skor,
        CASE WHEN {_bps_recent(model)} THEN 'BPS' ELSE 'PMT' END AS sumber"""
    query = family_features_query(
        select, "registry.current_family", version_members(version), model.member_features_used()
    )
    return f"CREATE TEMP TABLE family_score ON COMMIT DROP AS {query}"


def _bps_recent(model: RankingModel) -> str:
    return (
        "(f.pengeluaran_per_kapita IS NOT NULL AND f.tanggal_survei > "
        f"%(reference_date)s::date - interval '{int(model.bps_max_age_months)} months')"
    )


def eligibility_context_sql(members: str) -> str:
    """The eligibility context over `members` (a relation of publish.anggota rows)."""
    return statements("publish/eligibility.sql", members=members)["context"]


def _recipient_statement(program_sql: str, priority_sql: str, program_id: str) -> str:
    # program ids match ^[a-z][a-z0-9_]+$; predicates hold only validated integers and codes
    return f"""INSERT INTO publish.recipient (version, program, nik, no_kk, kode_wilayah, desil, prioritas)
        SELECT %(version)s, '{program_id}', c.nik, c.no_kk, c.kode_wilayah, c.desil, {priority_sql}
        FROM eligibility_context c WHERE {program_sql}"""  # noqa: S608


def _counts(conn: psycopg.Connection, version: int) -> dict:
    individuals, families = conn.execute(
        "SELECT (SELECT count(*) FROM publish.anggota WHERE version = %(v)s), "
        "(SELECT count(*) FROM publish.keluarga WHERE version = %(v)s)",
        {"v": version},
    ).fetchone()
    per_desil = conn.execute(
        "SELECT desil, count(*), sum(jumlah_anggota) FROM publish.keluarga WHERE version = %s GROUP BY desil "
        "ORDER BY desil",
        (version,),
    ).fetchall()
    return {
        "individuals": individuals,
        "families": families,
        "desil": {str(d): {"families": f, "individuals": int(i)} for d, f, i in per_desil},
    }


def program_changes(conn: psycopg.Connection, version: int, previous: int | None) -> dict:
    """Recipients per program and how many were added/removed against the previous version."""
    rows = conn.execute(
        """
        SELECT program,
               count(*) FILTER (WHERE cur) AS recipients,
               count(*) FILTER (WHERE cur AND NOT prev) AS added,
               count(*) FILTER (WHERE prev AND NOT cur) AS removed
        FROM (SELECT coalesce(c.program, p.program) AS program, c.nik IS NOT NULL AS cur, p.nik IS NOT NULL AS prev
              FROM (SELECT program, nik FROM publish.recipient WHERE version = %(v)s) c
              FULL JOIN (SELECT program, nik FROM publish.recipient WHERE version = %(p)s) p
                ON p.program = c.program AND p.nik = c.nik) x
        GROUP BY program ORDER BY program
        """,
        {"v": version, "p": previous if previous is not None else -1},
    ).fetchall()
    return {program: {"recipients": r, "added": a, "removed": d} for program, r, a, d in rows}


def build_candidate(
    conn: psycopg.Connection, round_id: str, model: RankingModel, programs: ProgramSet
) -> CandidateSummary:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    found = conn.execute(
        "SELECT round_seq, status, reference_date, dukcapil_snapshot_pk FROM ingest.round WHERE round_id = %s",
        (round_id,),
    ).fetchone()
    if not found:
        raise CandidateError(f"round {round_id} is unknown; stage, validate and merge it first")
    round_seq, status, reference_date, snapshot_pk = found
    existing = conn.execute(
        "SELECT version, status, counts, programs FROM publish.version "
        "WHERE round_seq = %s AND status <> 'DISCARDED'",
        (round_seq,),
    ).fetchone()
    if existing:
        return CandidateSummary(
            existing[0], round_id, existing[1], False, existing[2] or {}, existing[3] or {}
        )
    if status != "MERGED":
        raise CandidateError(f"round {round_id} is {status}; only a merged round can be ranked and published")
    later = conn.execute(
        "SELECT round_id FROM ingest.round WHERE round_seq > %s AND status IN ('MERGED', 'PUBLISHED') LIMIT 1",
        (round_seq,),
    ).fetchone()
    if later:
        raise CandidateError(
            f"round {later[0]} was merged after {round_id}: the registry no longer holds {round_id}'s state"
        )
    version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM publish.version").fetchone()[0]
    previous = conn.execute("SELECT max(version) FROM publish.version WHERE status = 'PUBLISHED'").fetchone()[
        0
    ]
    conn.execute(
        "INSERT INTO publish.version (version, round_seq, status, previous_version, ranking_model, "
        "reference_date) VALUES (%s, %s, 'CANDIDATE', %s, %s, %s)",
        (
            version,
            round_seq,
            previous,
            Jsonb(model.reference | {"programs_version": programs.version}),
            reference_date,
        ),
    )
    conn.execute("SELECT publish.ensure_version_partitions(%s)", (version,))
    params = {"version": version, "reference_date": reference_date, "snapshot_pk": snapshot_pk}
    summary = CandidateSummary(version, round_id, "CANDIDATE", True)
    steps = list(statements("publish/candidate.sql").items())
    # the ranking (generated from the model file) runs on the frozen members, before the deciles
    at = [name for name, _ in steps].index("assign_desil")
    steps.insert(at, ("rank_families", rank_statement(model, version)))
    context = eligibility_context_sql(version_members(version))
    steps.append(
        ("eligibility_context", f"CREATE TEMP TABLE eligibility_context ON COMMIT DROP AS {context}")
    )
    for program in programs.programs:
        steps.append(
            (
                f"recipients_{program.id}",
                _recipient_statement(program.eligible_sql(), program.priority_sql, program.id),
            )
        )
    for name, statement in steps:
        started = time.perf_counter()
        conn.execute(statement, params)  # always bound: SQL files write a literal % as %%
        summary.step_seconds[name] = time.perf_counter() - started
        log.debug("candidate v%s: %s in %.1f s", version, name, summary.step_seconds[name])
    summary.counts = _counts(conn, version)
    empty = {"recipients": 0, "added": 0, "removed": 0}
    summary.programs = {p.id: dict(empty) for p in programs.programs} | program_changes(
        conn, version, previous
    )
    conn.execute(
        "UPDATE publish.version SET counts = %s, programs = %s WHERE version = %s",
        (Jsonb(summary.counts), Jsonb(summary.programs), version),
    )
    return summary
