"""Staging copies are kept for a while, not for ever: the raw files stay in the raw store.

A round's staging partitions hold its submissions' rows as delivered; they are read until the round's
feedback is written, and are worth keeping a little longer for operators. A Dukcapil snapshot's staging
partition holds the lines that differed from the reference. Both follow one setting,
DTSEN_STAGING_KEEP_ROUNDS: the staging of the newest N merged rounds, and of the newest N snapshots, is
kept; older partitions are dropped (O(1): a partition, not rows) and the round or snapshot records
when. Whatever a report or an explanation needs later lives in the warehouse's own tables.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from dtsen.ingest.register import ROUND_LOCK_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    rounds: list[int]
    snapshots: list[int]


def prune_staging(conn: psycopg.Connection, keep: int) -> Pruned:
    """Drop the staging partitions older than the newest `keep` merged rounds and loaded snapshots."""
    # Under the lock that registers rounds (held to the caller's commit): a second open_round at the
    # same time waits, then finds them dropped, rather than dropping and reporting them too.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ROUND_LOCK_KEY,))
    rounds = [
        seq
        for (seq,) in conn.execute(
            "SELECT round_seq FROM ingest.round WHERE status IN ('MERGED', 'PUBLISHED') "
            "AND staging_pruned_at IS NULL AND round_seq < ALL (SELECT round_seq FROM ingest.round "
            "WHERE status IN ('MERGED', 'PUBLISHED') ORDER BY round_seq DESC LIMIT %s) ORDER BY round_seq",
            (keep,),
        )
    ]
    # dropped by the owner's functions (the round's role owns no table)
    for seq in rounds:
        conn.execute("SELECT staging.drop_round_partitions(%s::smallint)", (seq,))
        conn.execute("UPDATE ingest.round SET staging_pruned_at = now() WHERE round_seq = %s", (seq,))
    snapshots = [
        pk
        for (pk,) in conn.execute(
            "SELECT snapshot_pk FROM ingest.dukcapil_snapshot WHERE staging_pruned_at IS NULL "
            "AND snapshot_pk < ALL (SELECT snapshot_pk FROM ingest.dukcapil_snapshot "
            "ORDER BY snapshot_pk DESC LIMIT %s) ORDER BY snapshot_pk",
            (keep,),
        )
    ]
    for pk in snapshots:
        conn.execute("SELECT staging.drop_snapshot_partitions(%s)", (pk,))
        conn.execute(
            "UPDATE ingest.dukcapil_snapshot SET staging_pruned_at = now() WHERE snapshot_pk = %s", (pk,)
        )
    if rounds or snapshots:
        log.info(
            "staging dropped for rounds %s and Dukcapil snapshots %s (raw files kept)", rounds, snapshots
        )
    return Pruned(rounds, snapshots)
