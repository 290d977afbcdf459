"""Validate a staged round: row-level suites per file, then cross-row rules and the quality gate.

Everything runs in the calling step's transaction (Great Expectations is lent its connection).
Idempotent: a submission's suite results are upserted and its rejections keyed by (line, code,
field); the cross-row rules and the quality gate run once per round and mark the round VALIDATED, so
a re-run (or a retried task) changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg

from dtsen.config import settings
from dtsen.contract import FILE_SPECS, FileKind
from dtsen.errors import DataError
from dtsen.progress import Progress, timed
from dtsen.sqlfiles import statements
from dtsen.validate.run import (
    Batch,
    SuiteOutcome,
    store_snapshot_suite_result,
    store_suite_result,
    validate_batch,
)

log = logging.getLogger(__name__)


@dataclass
class SubmissionValidation:
    submission_pk: int
    rules_failed: int = 0
    row_rejections: int = 0
    suites: dict[str, bool] = field(default_factory=dict)


def validate_submission(conn: psycopg.Connection, submission_pk: int) -> SubmissionValidation:
    """Run the suites of a STAGED submission's files and write their row-level rejections."""
    outcome = SubmissionValidation(submission_pk)
    round_seq, status = conn.execute(
        "SELECT round_seq, status FROM ingest.submission WHERE submission_pk = %s", (submission_pk,)
    ).fetchone()
    if status != "STAGED":
        return outcome
    files = conn.execute(
        "SELECT file_name, file_kind, rows_received FROM ingest.submission_file WHERE submission_pk = %s AND status = 'STAGED' "
        "ORDER BY file_name",
        (submission_pk,),
    ).fetchall()
    progress = Progress(f"submission #{submission_pk}: validating", [f for f, _, _ in files])
    for file_name, kind_value, rows in files:
        batch = Batch(FileKind(kind_value), round_seq=round_seq, submission_pk=submission_pk)
        with timed(progress, file_name) as part:
            suite, rejections = validate_file(conn, batch, file_name)
            part.rows = rows
        outcome.row_rejections += rejections
        outcome.rules_failed += suite.failed
        outcome.suites[suite.suite_name] = suite.success
    return outcome


def validate_file(conn: psycopg.Connection, batch: Batch, file_name: str) -> tuple[SuiteOutcome, int]:
    """One staged file: its suite's result stored, its row-level rejections written."""
    suite, rejections = validate_batch(conn, batch, file_name)
    store_suite_result(conn, batch.submission_pk, batch.kind, suite)
    return suite, rejections


def validate_snapshot(conn: psycopg.Connection, snapshot_pk: int) -> None:
    """Run the Dukcapil suite once per snapshot, on the lines that differed from the reference (all of
    the first extract); defects are logged as counts for operators."""
    done = conn.execute(
        "SELECT 1 FROM quality.snapshot_suite_result WHERE snapshot_pk = %s", (snapshot_pk,)
    ).fetchone()
    if done:
        return
    outcome, _ = validate_batch(
        conn,
        Batch(FileKind.DUKCAPIL_PENDUDUK, snapshot_pk=snapshot_pk),
        None,
        stage=f"Dukcapil snapshot #{snapshot_pk}: validating its differing lines",
    )
    store_snapshot_suite_result(conn, snapshot_pk, outcome)
    for rule in outcome.rules:
        if rule.failed:
            log.warning(
                "dukcapil snapshot #%s: %d rows fail %s on %s",
                snapshot_pk,
                rule.failed,
                rule.reason_code,
                rule.field,
            )


@dataclass
class GateOutcome:
    submission_pk: int
    received: int
    rejected: int
    passed: bool


def apply_cross_rules(conn: psycopg.Connection, round_seq: int, snapshot_pk: int | None) -> None:
    from dtsen.programs import load_programs

    programs = [p.id for p in load_programs(settings().programs_path).programs]
    params = {"round_seq": round_seq, "snapshot_pk": snapshot_pk, "programs": programs}
    # Freshly loaded partitions have no statistics yet (autovacuum comes later): without them the
    # planner takes the round's staging and rejections for empty and picks nested loops. As the owner
    # (meta.analyze): the round's role may not ANALYZE what it does not own.
    for table in (*(kind.value for kind in ROUND_KINDS), "rejection"):
        schema = "quality" if table == "rejection" else "staging"
        conn.execute("SELECT meta.analyze(%s::regclass)", (f"{schema}.{table}_r{int(round_seq)}",))
    steps = statements("validate/cross_rules.sql")
    rejected = 0
    for name, statement in steps.items():
        rejected = conn.execute(statement, params).rowcount
        log.debug("cross rule step %s done", name)
    # FAMILY_STRUCTURE cascades: a rejected member row can leave another family of the submission
    # (the one it was moving into) without its head, so the check repeats on the rows still clean
    # until nothing more fails. Families are chained only by moves: a few passes at most.
    passes = 0
    while rejected:
        if passes == MAX_STRUCTURE_PASSES:
            raise RuntimeError(f"FAMILY_STRUCTURE did not settle after {MAX_STRUCTURE_PASSES} passes")
        for name in ("drop_rejected_members", "drop_rejected_families"):
            conn.execute(steps[name], params)
        rejected = conn.execute(steps["family_structure"], params).rowcount
        passes += 1


MAX_STRUCTURE_PASSES = 50
# the per-round staging tables: one per submission file kind (Dukcapil is staged per snapshot)
ROUND_KINDS = tuple(kind for kind in FileKind if kind is not FileKind.DUKCAPIL_PENDUDUK)

GATE_SQL = """
SELECT sub.submission_pk,
       (SELECT coalesce(sum(f.rows_received), 0) FROM ingest.submission_file f
        WHERE f.submission_pk = sub.submission_pk) AS received,
       (SELECT count(*) FROM (SELECT DISTINCT q.file_name, q.line_no FROM quality.rejection q
                              WHERE q.round_seq = sub.round_seq AND q.submission_pk = sub.submission_pk
                                -- rows held for a defect of the Dukcapil extract are not the sender's failures
                                AND q.reason_code <> 'NIK_DUKCAPIL_CONFLICT') d) AS rejected
FROM ingest.submission sub
WHERE sub.round_seq = %(round_seq)s AND sub.status = 'STAGED'
"""

GATE_REJECT_ROWS = {
    kind: f"""
INSERT INTO quality.rejection (round_seq, submission_pk, file_name, line_no, reason_code, field, key_value)
SELECT s.round_seq, s.submission_pk, %(file_name)s, s.line_no, 'SUBMISSION_QUALITY_GATE', '', s.{key}
FROM staging.{kind} s
WHERE s.round_seq = %(round_seq)s AND s.submission_pk = %(submission_pk)s
  AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = s.round_seq
                  AND q.submission_pk = s.submission_pk AND q.file_name = %(file_name)s AND q.line_no = s.line_no)
ON CONFLICT DO NOTHING
"""  # noqa: S608 (table and key names come from the contract enum)
    for kind, key in ((k.value, FILE_SPECS[k].key) for k in ROUND_KINDS)
}


def apply_quality_gate(conn: psycopg.Connection, round_seq: int, threshold: float) -> list[GateOutcome]:
    outcomes = []
    for submission_pk, received, rejected in conn.execute(GATE_SQL, {"round_seq": round_seq}).fetchall():
        passed = received == 0 or rejected / received <= threshold
        outcomes.append(GateOutcome(submission_pk, int(received), int(rejected), passed))
        if passed:
            conn.execute(
                "UPDATE ingest.submission SET status = 'VALIDATED', updated_at = now() WHERE submission_pk = %s",
                (submission_pk,),
            )
            continue
        for file_name, kind in conn.execute(
            "SELECT file_name, file_kind FROM ingest.submission_file WHERE submission_pk = %s AND status = 'STAGED'",
            (submission_pk,),
        ).fetchall():
            conn.execute(
                GATE_REJECT_ROWS[kind],
                {"round_seq": round_seq, "submission_pk": submission_pk, "file_name": file_name},
            )
        conn.execute(
            "UPDATE ingest.submission SET status = 'REJECTED', reason_code = 'SUBMISSION_QUALITY_GATE', "
            "detail = %s, updated_at = now() WHERE submission_pk = %s",
            (f"{rejected} of {received} rows failed (limit {threshold:.0%})", submission_pk),
        )
    return outcomes


class RoundNotReady(DataError):
    pass


VALIDATION_LOCK_KEY = 0x0D75E2


# Submissions registered but not through their suites (a task that failed or has not run yet).
UNFINISHED_SUBMISSIONS_SQL = """
SELECT count(*) FROM ingest.submission s
WHERE s.round_seq = %(round_seq)s
  AND (s.status = 'RECEIVED'
       OR (s.status = 'STAGED' AND EXISTS (
               SELECT 1 FROM ingest.submission_file f WHERE f.submission_pk = s.submission_pk AND f.status = 'STAGED'
                 AND NOT EXISTS (SELECT 1 FROM quality.suite_result r
                                 WHERE r.submission_pk = s.submission_pk AND r.file_kind = f.file_kind))))
"""


def finish_validation(
    conn: psycopg.Connection, round_seq: int, threshold: float | None = None
) -> list[GateOutcome] | None:
    """After every submission's suites: cross-row rules, the quality gate, NIK-repair suggestions, and
    the round marked VALIDATED (in the caller's transaction). None if the round was validated before."""
    threshold = settings().quality_gate_threshold if threshold is None else threshold
    # One round validates at a time; the lock is released when the caller's transaction ends.
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (VALIDATION_LOCK_KEY, round_seq))
    status, snapshot_pk = conn.execute(
        "SELECT status, dukcapil_snapshot_pk FROM ingest.round WHERE round_seq = %s", (round_seq,)
    ).fetchone()
    if status != "OPEN":
        return None
    unfinished = conn.execute(UNFINISHED_SUBMISSIONS_SQL, {"round_seq": round_seq}).fetchone()[0]
    if unfinished:
        # their rows would be neither merged nor rejected: stage and validate them first
        raise RoundNotReady(
            f"{unfinished} submission(s) of round #{round_seq} are not staged and validated yet: "
            "rerun (clear) their stage_and_validate tasks first"
        )
    apply_cross_rules(conn, round_seq, snapshot_pk)
    gate = apply_quality_gate(conn, round_seq, threshold)
    from dtsen.validate.nik_repair import suggest_nik_repairs  # pandas, rapidfuzz: not at DAG parse

    suggest_nik_repairs(conn, round_seq, snapshot_pk)
    conn.execute("UPDATE ingest.round SET status = 'VALIDATED' WHERE round_seq = %s", (round_seq,))
    return gate
