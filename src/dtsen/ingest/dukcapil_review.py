"""A Dukcapil extract held for a person's decision, and the decisions on it.

An extract the plausibility check stops (dtsen.ingest.dukcapil_guard) is recorded as a review of its
exact bytes (date folder and SHA-256): nothing of it is applied, and every round opened on it waits.
A person then decides, in Airflow (the round's `extract_review` task) or with `dtsen decide-extract`:
- APPLY: the extract is applied as it is (the review is recorded with the snapshot);
- KEEP_REFERENCE: the extract is set aside and the reference stays as it was (the round goes on
  with the snapshot already loaded); a corrected extract comes under a new date folder.
Every answer is kept (ingest.dukcapil_decision), an invalid one as REFUSED; the first valid decision
stands and a later one is a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from dtsen.ingest.dukcapil_guard import describe

APPLY, KEEP_REFERENCE = "APPLY", "KEEP_REFERENCE"
DECISIONS = (APPLY, KEEP_REFERENCE)


@dataclass(frozen=True)
class Review:
    review_pk: int
    snapshot_date: dt.date
    sha256: str
    found: dict
    status: str  # WAITING, APPLY, KEEP_REFERENCE

    @property
    def why(self) -> str:
        return describe(self.found)

    @property
    def subject(self) -> str:
        return f"Apply the Dukcapil extract of {self.snapshot_date}? It is held: {self.found['removed']:,} NIKs would go"

    def markdown(self) -> str:
        """The question put to a person: what the check found (counts and regency codes only)."""
        f = self.found
        lines = [
            f"The civil-registry extract **{self.snapshot_date}** (sha256 `{self.sha256[:12]}…`) was not applied: "
            f"{self.why}.",
            "",
            f"- current NIKs in the reference: {f['reference_niks']:,}",
            f"- NIKs it would remove (absent, or only in unreadable lines): {f['removed']:,} "
            f"({f['removed_share']:.2%})",
            f"- new NIKs: {f['new']:,}; changed (deaths and corrections included): {f['changed']:,}",
            f"- NIKs listed twice with different content (kept as they were): {f['conflicting']:,}",
        ]
        if f.get("regencies"):
            lines += ["", "| regency | removed | current | share |", "|---|---:|---:|---:|"]
            lines += [
                f"| {r['kode_kabupaten'] or '—'} | {r['removed']:,} | {r['current']:,} | {r['share']:.2%} |"
                for r in f["regencies"][:30]
            ]
        lines += [
            "",
            "**Apply the extract**: the reference takes it as it is (those NIKs lose their civil-registry "
            "record; no registry record is closed by their absence). **Keep the current reference**: the "
            "extract is set aside and this round goes on with the reference as it stands; a corrected "
            "extract comes under a new date folder. A reason is required and recorded.",
        ]
        return "\n".join(lines)


def _review(row) -> Review | None:
    return Review(*row) if row else None


SELECT = "SELECT review_pk, snapshot_date, sha256, found, status FROM ingest.dukcapil_review "


def review_of(conn: psycopg.Connection, snapshot_date: dt.date, sha256: str) -> Review | None:
    return _review(
        conn.execute(SELECT + "WHERE snapshot_date = %s AND sha256 = %s", (snapshot_date, sha256)).fetchone()
    )


def set_aside(conn: psycopg.Connection) -> dict[dt.date, set[str]]:
    """The extracts (date -> their SHA-256s) a person chose not to apply."""
    found: dict[dt.date, set[str]] = {}
    for day, sha in conn.execute(
        "SELECT snapshot_date, sha256 FROM ingest.dukcapil_review WHERE status = %s", (KEEP_REFERENCE,)
    ):
        found.setdefault(day, set()).add(sha)
    return found


def hold(conn: psycopg.Connection, snapshot_date: dt.date, sha256: str, found: dict) -> Review:
    """Record the extract as waiting for a decision (once per bytes; what was found is refreshed)."""
    row = conn.execute(
        "INSERT INTO ingest.dukcapil_review (snapshot_date, sha256, found) VALUES (%s, %s, %s) "
        "ON CONFLICT (snapshot_date, sha256) DO UPDATE SET found = EXCLUDED.found "
        "WHERE ingest.dukcapil_review.status = 'WAITING' "
        "RETURNING review_pk, snapshot_date, sha256, found, status",
        (snapshot_date, sha256, Jsonb(found)),
    ).fetchone()
    return _review(row) or review_of(conn, snapshot_date, sha256)


def waiting_for(conn: psycopg.Connection, round_id: str) -> Review | None:
    """The review the round waits on (None: it waits on none), as it stands now."""
    return _review(
        conn.execute(
            "SELECT v.review_pk, v.snapshot_date, v.sha256, v.found, v.status FROM ingest.round r "
            "JOIN ingest.dukcapil_review v ON v.review_pk = r.dukcapil_review_pk WHERE r.round_id = %s",
            (round_id,),
        ).fetchone()
    )


def waiting_on_date(conn: psycopg.Connection, snapshot_date: dt.date) -> Review | None:
    return _review(
        conn.execute(
            SELECT + "WHERE snapshot_date = %s AND status = 'WAITING' ORDER BY review_pk DESC LIMIT 1",
            (snapshot_date,),
        ).fetchone()
    )


def decide(
    conn: psycopg.Connection,
    review_pk: int,
    outcome: str,
    decided_by: str | None,
    channel: str,
    reason: str | None,
    dag_run_id: str | None = None,
    refused_because: str | None = None,
) -> tuple[str, bool]:
    """Record an answer on a held extract, in the caller's transaction; the review's status after it,
    and whether this answer settled it.
    The review row is locked first, so of two answers at once the second sees the first's decision
    and changes nothing (a repeated timeout or refusal of the same run is recorded once); an answer
    on a review decided already (say with dtsen decide-extract) is not recorded either."""
    status = conn.execute(
        "SELECT status FROM ingest.dukcapil_review WHERE review_pk = %s FOR UPDATE", (review_pk,)
    ).fetchone()[0]
    if status != "WAITING":
        return status, False
    last = conn.execute(
        "SELECT outcome, decided_by FROM ingest.dukcapil_decision WHERE review_pk = %s "
        "AND dag_run_id IS NOT DISTINCT FROM %s ORDER BY decision_pk DESC LIMIT 1",
        (review_pk, dag_run_id),
    ).fetchone()
    if outcome in DECISIONS or last != (outcome, decided_by):
        conn.execute(
            "INSERT INTO ingest.dukcapil_decision (review_pk, outcome, decided_by, channel, reason, "
            "refused_because, dag_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (review_pk, outcome, decided_by, channel, reason, refused_because, dag_run_id),
        )
    if outcome in DECISIONS:
        conn.execute(
            "UPDATE ingest.dukcapil_review SET status = %s WHERE review_pk = %s", (outcome, review_pk)
        )
        return outcome, True
    return status, False


def last_decision(conn: psycopg.Connection, review_pk: int) -> tuple[str, str | None, str | None] | None:
    """(outcome, decided_by, reason) of the decision that settled the review."""
    return conn.execute(
        "SELECT outcome, decided_by, reason FROM ingest.dukcapil_decision WHERE review_pk = %s "
        "AND outcome IN ('APPLY', 'KEEP_REFERENCE') ORDER BY decision_pk LIMIT 1",
        (review_pk,),
    ).fetchone()
