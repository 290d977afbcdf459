"""Tell the channel that collects households' objections and proposals (sanggah, usul), and each region,
what became of them (issue 26, item 4): once per round, after the round's cases step.

Files, in the publication folder (docs/contract-extensions.md), written once per round:
- `aduan/<round_id>/hasil_aduan.csv`: every objection or proposal that came in this round (the case
  that answers it, or why none) and every earlier one whose case closed this round (its outcome);
- `aduan/<round_id>/wilayah/<kode kabupaten>.csv`: the same rows of the region's own cases;
- `aduan/<round_id>/ringkasan.json`: the counts per status and the files' sha256.
The subject family's KK is masked; `pelapor_ref` is the channel's own opaque reference, from which the
channel tells its reporter. Then a signed callback to each webhook of the channel (subscribers.json
`aduan`) announces the files: HMAC-SHA256 as every DTSEN webhook (dtsen.notify.webhook); one that is
not delivered is recorded, does not fail the round, and is posted again by a rerun of the step."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dtsen.sqlfiles import copy_csv, statements
from dtsen.storage import atomic_write, file_sha256

SQL = "cases/outcomes.sql"
OUTCOME_FILE = "hasil_aduan.csv"
EVENT = "dtsen.aduan.outcomes"
OUTCOMES_LOCK_KEY = 0x0D75E8  # one round's outcome files written by one run at a time


def outcome_dir(publish_root: Path, round_id: str) -> Path:
    return Path(publish_root) / "aduan" / round_id


def write_outcomes(conn: psycopg.Connection, round_seq: int, round_id: str, publish_root: Path) -> dict:
    """Write the round's outcome files once (a rerun returns what the first run wrote, with
    done_before); the summary is counts and file names only. Runs in the caller's transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (OUTCOMES_LOCK_KEY, round_seq))
    done = conn.execute(
        "SELECT summary FROM cases.aduan_outcome_run WHERE round_seq = %s", (round_seq,)
    ).fetchone()
    if done:
        return done[0] | {"done_before": True}
    sql = statements(SQL)
    folder = outcome_dir(publish_root, round_id)
    params = {"round_seq": round_seq, "regency": None}
    files: dict[str, str] = {}
    conn.execute(sql["reset"])
    conn.execute(sql["gather"], params)
    conn.execute(sql["index_gathered"])
    rows = copy_csv(conn, sql["outcome_rows"], params, folder / OUTCOME_FILE)
    files[OUTCOME_FILE] = file_sha256(folder / OUTCOME_FILE)[0]
    regencies = [kode for (kode,) in conn.execute(sql["regencies"], params)]
    for kode in regencies:
        name = f"wilayah/{kode}.csv"
        copy_csv(conn, sql["outcome_rows"], params | {"regency": kode}, folder / name)
        files[name] = file_sha256(folder / name)[0]
    statuses = dict(conn.execute(sql["counts"], params).fetchall())
    summary = {
        "round_id": round_id,
        "rows": rows,
        "status": statuses,
        "regions": len(regencies),
        "files": files,
    }
    atomic_write(
        folder / "ringkasan.json",
        (json.dumps(summary, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode(),
    )
    conn.execute(
        "INSERT INTO cases.aduan_outcome_run (round_seq, summary) VALUES (%s, %s)",
        (round_seq, Jsonb(summary)),
    )
    return summary | {"done_before": False}


def callback_payload(summary: dict) -> dict:
    """What the channel's webhooks are told: where the round's files are and their counts (no rows:
    the files carry them)."""
    return {
        "event": EVENT,
        "round_id": summary["round_id"],
        "path": f"aduan/{summary['round_id']}/",  # under the publication folder
        "rows": summary["rows"],
        "status": summary["status"],
        "files": summary["files"],
    }
