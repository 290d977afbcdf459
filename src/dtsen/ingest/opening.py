"""Opening a round (register it, load its Dukcapil snapshot, list and refuse landing entries) and
ingesting one of its submissions: what the round's first two steps do (dtsen.round)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dtsen.config import settings
from dtsen.ingest.dukcapil import SnapshotHeld, SnapshotOutcome, ingest_latest_snapshot
from dtsen.ingest.dukcapil_review import Review
from dtsen.ingest.landing import LandingError, Refused, SubmissionDir, list_round
from dtsen.ingest.register import (
    SubmissionOutcome,
    ensure_round,
    ingest_submission,
    record_refused_listing,
    round_reference_date,
)

log = logging.getLogger(__name__)


@dataclass
class RoundOpening:
    round_id: str
    round_seq: int
    snapshot: SnapshotOutcome | None
    landing: Path
    raw: Path
    submissions: list[SubmissionDir] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    held: Review | None = None  # the newest extract waits for a person's decision (nothing of it applied)


def open_round(
    conn: psycopg.Connection, round_id: str, *, landing_root: Path | None = None, raw_root: Path | None = None
) -> RoundOpening:
    """Register the round, load its Dukcapil snapshot, and list its submissions (nothing staged yet)."""
    cfg = settings()
    landing = (landing_root or cfg.landing_root).resolve()
    raw = raw_root or cfg.raw_root
    # list first: a round id with no folder (a typo) must not be registered, or it would block
    # every earlier round (rounds are merged in order)
    listing = list_round(landing, round_id)
    round_seq = ensure_round(conn, round_id, landing)
    record_refused_listing(conn, round_seq, listing.refused)
    snapshot = attach_snapshot(conn, round_id, round_seq, landing, raw)
    held = snapshot.review if isinstance(snapshot, SnapshotHeld) else None
    return RoundOpening(
        round_id,
        round_seq,
        snapshot if isinstance(snapshot, SnapshotOutcome) else None,
        landing,
        raw,
        listing.submissions,
        listing.refused,
        held,
    )


def attach_snapshot(
    conn: psycopg.Connection, round_id: str, round_seq: int, landing: Path, raw: Path
) -> SnapshotOutcome | SnapshotHeld | None:
    """Load the round's Dukcapil snapshot and make it the round's; a held extract makes the round wait
    on its review instead (its submissions are not validated until a person decides)."""
    snapshot = ingest_latest_snapshot(conn, landing, raw, round_reference_date(round_id))
    if isinstance(snapshot, SnapshotHeld):
        conn.execute(
            "UPDATE ingest.round SET dukcapil_review_pk = %s WHERE round_seq = %s",
            (snapshot.review.review_pk, round_seq),
        )
        return snapshot
    conn.execute("UPDATE ingest.round SET dukcapil_review_pk = NULL WHERE round_seq = %s", (round_seq,))
    if snapshot is None:
        log.warning(
            "round %s: no Dukcapil snapshot on or before the cut-off; NIK checks cannot run", round_id
        )
    else:
        conn.execute(
            "UPDATE ingest.round SET dukcapil_snapshot_pk = %s WHERE round_seq = %s",
            (snapshot.snapshot_pk, round_seq),
        )
    return snapshot


def known_regencies(conn: psycopg.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT kode FROM ref.kabupaten")}


def ingest_one_submission(
    conn: psycopg.Connection,
    round_id: str,
    source: str,
    submission_id: str,
    *,
    landing_root: Path | None = None,
    raw_root: Path | None = None,
) -> SubmissionOutcome:
    """Check, register and stage one submission of an opened round (one Airflow mapped task)."""
    cfg = settings()
    landing = (landing_root or cfg.landing_root).resolve()
    listing = list_round(landing, round_id)
    found = [s for s in listing.submissions if (s.source, s.submission_id) == (source, submission_id)]
    if not found:
        raise LandingError(
            f"submission {source}/{submission_id} is no longer in round {round_id}'s landing zone "
            "(moved or renamed after the round was opened): put it back, or rerun the round from open_round"
        )
    round_seq = ensure_round(conn, round_id, landing)
    return ingest_submission(
        conn,
        landing,
        raw_root or cfg.raw_root,
        round_seq,
        found[0],
        known_regencies(conn),
        max_submission_bytes=cfg.max_submission_bytes,
    )
