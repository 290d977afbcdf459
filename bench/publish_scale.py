"""Benchmark: ranking + eligibility, audit and publication of a merged registry (issue 5).

    .venv/bin/python bench/publish_scale.py --database-url postgresql://postgres@127.0.0.1/dtsen_merge_10000000 \
        --round 2026-Q2 --fresh

Uses a warehouse whose round is already merged (bench/merge_scale.py leaves one per registry size:
database dtsen_merge_<size>, round 2026-Q2). Timed, each with the process's peak RSS so far: building
the candidate (freeze, rank, desil, recipients), the Great Expectations audit, and writing the
version's files. In the same run, the reference: a plain `COPY (SELECT ...) TO STDOUT` of the same
queries into /dev/null. Target: publication >= 0.5 x the reference rate, peak Python memory < 1 GiB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import psycopg
from common import reference_copy_seconds


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def discard_round_versions(conn: psycopg.Connection, round_id: str) -> None:
    """--fresh: forget this round's earlier bench versions (the newest ones) so it can be rebuilt: their
    spans are deleted and the spans they closed are open again."""
    versions = [
        v
        for (v,) in conn.execute(
            "SELECT version FROM publish.version v JOIN ingest.round r USING (round_seq) WHERE r.round_id = %s",
            (round_id,),
        ).fetchall()
    ]
    if versions:
        first = min(versions)
        for table in ("keluarga", "anggota", "recipient"):
            conn.execute(f"DELETE FROM publish.{table}_span WHERE valid_from >= %s", (first,))  # noqa: S608
            conn.execute(f"UPDATE publish.{table}_span SET valid_to = NULL WHERE valid_to >= %s", (first,))  # noqa: S608
        conn.execute("DELETE FROM publish.recipient_count WHERE version >= %s", (first,))
    conn.execute(
        "UPDATE publish.version SET previous_version = NULL WHERE previous_version = ANY(%s)", (versions,)
    )
    conn.execute("DELETE FROM publish.version WHERE version = ANY(%s)", (versions,))
    conn.execute(
        "UPDATE ingest.round SET status = 'MERGED', published_version = NULL WHERE round_id = %s", (round_id,)
    )
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--round", default="2026-Q2")
    parser.add_argument("--fresh", action="store_true", help="discard this round's earlier versions first")
    parser.add_argument("--publish-root", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    os.environ["DTSEN_DATABASE_URL"] = args.database_url

    from dtsen.programs import load_programs
    from dtsen.publish.audit import audit_version
    from dtsen.publish.candidate import build_candidate
    from dtsen.publish.version import publish_version, version_files
    from dtsen.rank.model import load_model
    from dtsen.warehouse import engine
    from dtsen.warehouse.migrate import migrate

    publish_root = args.publish_root or Path(tempfile.mkdtemp(prefix="dtsen-publish-bench-"))
    with engine.connect() as conn:
        migrate(conn)
        if args.fresh:
            discard_round_versions(conn, args.round)
        programs = load_programs()
        started = time.perf_counter()
        candidate = build_candidate(conn, args.round, load_model(), programs)
        candidate_seconds = time.perf_counter() - started
        rss_candidate = peak_rss_mib()
        started = time.perf_counter()
        audit = audit_version(conn, candidate.version)
        audit_seconds = time.perf_counter() - started
        rss_audit = peak_rss_mib()
        if audit.status == "BLOCKED":
            conn.execute(
                "UPDATE publish.version SET status = 'APPROVED', approved_by = 'bench' WHERE version = %s",
                (candidate.version,),
            )
        conn.commit()  # the candidate and its audit, as the rank_and_audit step commits them
        started = time.perf_counter()
        published = publish_version(conn, candidate.version, publish_root)
        conn.commit()  # as the publish step does
        publish_seconds = time.perf_counter() - started
        rss_publish = peak_rss_mib()
        previous = conn.execute(
            "SELECT previous_version FROM publish.version WHERE version = %s", (candidate.version,)
        ).fetchone()[0]
        files = version_files(sorted(p.id for p in programs.programs))
        reference_seconds, reference_bytes = reference_copy_seconds(
            conn, files, {"version": candidate.version, "previous": previous if previous is not None else -1}
        )
        conn.rollback()
    rows = sum(published.file_rows.values())
    file_seconds = sum(published.file_seconds.values())
    print(
        json.dumps(
            {
                "version": candidate.version,
                "individuals": candidate.counts.get("individuals"),
                "families": candidate.counts.get("families"),
                "candidate_seconds": round(candidate_seconds, 1),
                "candidate_steps": {k: round(v, 1) for k, v in candidate.step_seconds.items()},
                "audit_seconds": round(audit_seconds, 1),
                "audit_passed": audit.success,
                "publish_seconds": round(publish_seconds, 1),
                "file_rows": published.file_rows,
                "file_seconds": {k: round(v, 1) for k, v in published.file_seconds.items()},
                "publish_rows_per_s": round(rows / file_seconds) if file_seconds else None,
                "reference_copy_seconds": round(reference_seconds, 1),
                "reference_copy_mib": reference_bytes >> 20,
                "reference_rows_per_s": round(rows / reference_seconds),
                "ratio": round(reference_seconds / file_seconds, 3) if file_seconds else None,
                "peak_rss_mib": {"candidate": rss_candidate, "audit": rss_audit, "publish": rss_publish},
                "version_bytes_mib": sum(p.stat().st_size for p in published.path.rglob("*")) >> 20,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
