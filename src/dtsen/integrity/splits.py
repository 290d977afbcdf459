"""Household splitting and surges of tiny families, per round (sql/integrity/splits.sql).

After a round's merge, the families it created are counted per village and per submitting account:
those that took a member out of an existing family (a split) and those of one or two members (small).
Each count is scored with a robust z against the villages of the same regency (accounts: against the
round's accounts, as a share of the keluarga rows sent) and against its own past rounds. Flags are
warnings: they reach the region's feedback as a request for field verification, the candidate's
audit and approval text, the version manifest, and Kemensos's ground-check plan. Nobody is excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dtsen.integrity.config import SplitThresholds
from dtsen.sqlfiles import copy_csv, statements

CSV_NAME = "pemisahan_kk.csv"
INTEGRITY_LOCK_KEY = 0x0D75E6  # one round's split detection at a time, as merges are
IMPLAUSIBLE_CSV_NAME = "penerima_janggal.csv"


@dataclass
class SplitReport:
    round_seq: int
    scored: bool
    why: str | None = None
    counts: dict = field(default_factory=dict)
    detected_now: bool = False


def integrity_dir(publish_root: Path, round_id: str) -> Path:
    return publish_root / "integrity" / round_id


def detect_splits(
    conn: psycopg.Connection, round_seq: int, round_id: str, thresholds: SplitThresholds, publish_root: Path
) -> SplitReport:
    """Score the round once (a second call returns the stored outcome) and write the ground-check
    list of the families behind the flags."""
    # Checked and scored under a lock held to the caller's commit: a second run at the same time (two
    # schedulers, a manual run beside a scheduled one) waits here, then finds the stored outcome,
    # instead of scoring too and colliding with the first's rows.
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (INTEGRITY_LOCK_KEY,))
    path = integrity_dir(publish_root, round_id) / CSV_NAME
    stored = conn.execute(
        "SELECT scored, why, counts FROM quality.integrity_round WHERE round_seq = %s", (round_seq,)
    ).fetchone()
    if stored is None:
        return _score(conn, round_seq, thresholds, path)
    report = SplitReport(round_seq, stored[0], stored[1], stored[2])
    if report.scored:  # written again each time: a lost file comes back, an intact one is left as it is
        _write_families(conn, round_seq, thresholds, path)
    return report


def _score(conn: psycopg.Connection, round_seq: int, thresholds: SplitThresholds, path: Path) -> SplitReport:
    params = thresholds.as_params() | {"round_seq": round_seq}
    earlier = conn.execute(
        "SELECT count(*) FROM ingest.round WHERE round_seq < %s AND status IN ('MERGED', 'PUBLISHED')",
        (round_seq,),
    ).fetchone()[0]
    if not earlier:
        report = SplitReport(round_seq, False, "first load: every family is new, there is nothing to compare")
    else:
        queries = statements("integrity/splits.sql")
        for name in ("new_families", "villages", "accounts", "village_flags", "account_flags"):
            conn.execute(queries[name], params)
        cur = conn.execute(queries["counts"], params)
        counts = dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))
        counts["families_involved"] = _write_families(conn, round_seq, thresholds, path)
        report = SplitReport(round_seq, True, None, counts)
    conn.execute(
        "INSERT INTO quality.integrity_round (round_seq, scored, why, thresholds, counts) VALUES (%s, %s, %s, %s, %s)",
        (round_seq, report.scored, report.why, Jsonb(thresholds.as_params()), Jsonb(report.counts)),
    )
    report.detected_now = True
    return report


def _write_families(conn: psycopg.Connection, round_seq: int, thresholds: SplitThresholds, path: Path) -> int:
    """pemisahan_kk.csv: the families behind the round's flags; returns how many."""
    params = thresholds.as_params() | {"round_seq": round_seq}
    return copy_csv(conn, statements("integrity/splits.sql")["families_involved"], params, path)


def write_implausible_list(conn: psycopg.Connection, version: int, round_id: str, publish_root: Path) -> Path:
    """The version's implausible recipients per region, for the ground check (keys masked)."""
    path = integrity_dir(publish_root, round_id) / IMPLAUSIBLE_CSV_NAME
    copy_csv(conn, statements("integrity/splits.sql")["implausible_families"], {"version": version}, path)
    return path


_WHAT = {
    "split": "keluarga baru yang terbentuk dari anggota yang keluar dari KK lain (pemisahan KK)",
    "small": "keluarga baru beranggota 1-2 orang",
}


def feedback_notes(
    conn: psycopg.Connection, round_seq: int, kode_kabupaten: str | None, submitted_by: str | None
) -> list[dict]:
    """Plain Indonesian notes for a region's feedback: each flagged village of its regency and its own
    account, with the counts, asking for field verification (never an accusation)."""
    rows = conn.execute(
        "SELECT f.scope, f.key, f.metric, f.observed, f.families, f.peer_median, f.history_median, d.nama "
        "FROM quality.integrity_flag f LEFT JOIN ref.desa d ON f.scope = 'DESA' AND d.kode = f.key "
        "WHERE f.round_seq = %s AND ((f.scope = 'DESA' AND f.kode_kabupaten = %s) OR (f.scope = 'AKUN' AND f.key = %s)) "
        "ORDER BY f.scope DESC, f.key, f.metric",
        (round_seq, kode_kabupaten or "", submitted_by or ""),
    ).fetchall()
    notes = []
    for scope, key, metric, observed, families, peer, history, nama in rows:
        if scope == "DESA":
            usual = f"di desa/kelurahan lain di kabupaten/kota ini biasanya sekitar {peer:.0f}"
            if history is not None:
                usual += f", dan di desa/kelurahan ini pada putaran sebelumnya sekitar {history:.0f}"
            pesan = (
                f"Desa/kelurahan {nama or key} ({key}): {families} {_WHAT[metric]} pada putaran ini, "
                f"jauh di atas biasanya ({usual}). Mohon lakukan verifikasi lapangan untuk keluarga-keluarga "
                "ini. Catatan ini bukan tuduhan: perubahan bisa saja benar, dan data tetap diproses."
            )
        else:
            pesan = (
                f"Akun {key}: {families} {_WHAT[metric]} ({observed:.0%} dari baris keluarga.csv yang dikirim "
                f"akun ini), jauh di atas akun lain pada putaran ini (sekitar {peer:.0%}). Mohon lakukan "
                "verifikasi lapangan. Catatan ini bukan tuduhan: perubahan bisa saja benar, dan data tetap diproses."
            )
        notes.append(
            {
                "lingkup": "desa" if scope == "DESA" else "akun",
                "kode_wilayah" if scope == "DESA" else "akun": key,
                "jenis": "PEMISAHAN_KK" if metric == "split" else "KELUARGA_KECIL",
                "jumlah_keluarga": families,
                "pesan": pesan,
            }
        )
    return notes
