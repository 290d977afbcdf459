"""Ingest a whole round: register it, load its Dukcapil snapshot, check and stage every submission."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from dtsen.config import settings
from dtsen.ingest.dukcapil import SnapshotOutcome, ingest_latest_snapshot
from dtsen.ingest.landing import Refused, list_round
from dtsen.ingest.register import SubmissionOutcome, ensure_round, ingest_submission, round_reference_date

log = logging.getLogger(__name__)


@dataclass
class RoundIngest:
    round_id: str
    round_seq: int
    snapshot: SnapshotOutcome | None
    submissions: list[SubmissionOutcome] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def ingest_round(
    conn: psycopg.Connection, round_id: str, *, landing_root: Path | None = None, raw_root: Path | None = None
) -> RoundIngest:
    cfg = settings()
    landing = (landing_root or cfg.landing_root).resolve()
    raw = raw_root or cfg.raw_root
    round_seq = ensure_round(conn, round_id)
    snapshot = ingest_latest_snapshot(conn, landing, raw, round_reference_date(round_id))
    if snapshot is None:
        log.warning(
            "round %s: no Dukcapil snapshot on or before the cut-off; NIK checks cannot run", round_id
        )
    else:
        with conn.transaction():
            conn.execute(
                "UPDATE ingest.round SET dukcapil_snapshot_pk = %s WHERE round_seq = %s",
                (snapshot.snapshot_pk, round_seq),
            )
    listing = list_round(landing, round_id)
    for refused in listing.refused:
        log.warning("round %s: refused landing entry %s (%s)", round_id, refused.entry, refused.why)
    known_regencies = {row[0] for row in conn.execute("SELECT kode FROM ref.kabupaten")}
    result = RoundIngest(round_id, round_seq, snapshot, refused=listing.refused)
    for sub in listing.submissions:
        result.submissions.append(ingest_submission(conn, landing, raw, round_seq, sub, known_regencies))
    return result
