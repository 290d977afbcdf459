"""Feedback to each submission (contract section 3): ringkasan.json and ditolak.csv.

`<publish_root>/feedback/<round_id>/<submission_id>/`. ditolak.csv is produced by PostgreSQL
(COPY ... TO STDOUT) and streamed to disk, so a submission with millions of rejected rows needs no
memory. Keys are masked to their last 4 digits; every cell that a spreadsheet would read as a formula
is prefixed with an apostrophe. Files are written next to their final name and renamed into place,
so a region never reads a half-written report.

Extensions to the contract (additive): ditolak.csv carries both `nik` and `no_kk` (masked) because a
pemda submission mixes member and family rows; rows of a file that could not be read at all appear
once with an empty `line`; a NIK_NOT_IN_DUKCAPIL / NIK_MISMATCH message may end with a NIK-repair
suggestion (masked, with the positions of the differing digits). ringkasan.json adds `pesan` (the Indonesian text of each reason code
used) and `keterangan` (why a whole submission was rejected).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dtsen.contract import REASON_BY_CODE

DITOLAK_COLUMNS = ("file", "line", "nik", "no_kk", "reason", "field", "message")

# Rejected rows of one submission: row-level rejections, plus the staged rows of a submission that
# was rejected whole at file level (they carry the submission's code), plus one row for each file
# that could not be read at all. One output row per input row; several reasons are joined by ';'.
REJECTED_ROWS_SQL = """
WITH sub AS (
    SELECT submission_pk, round_seq, status, reason_code FROM ingest.submission WHERE submission_pk = %(pk)s
),
staged AS (
    SELECT 'keluarga.csv' AS file_name, line_no, NULL::text AS nik, no_kk, 'pemda' AS source
    FROM staging.pemda_keluarga WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'anggota.csv', line_no, nik, no_kk, 'pemda'
    FROM staging.pemda_anggota WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'keluarga.csv', line_no, NULL, no_kk, 'bps'
    FROM staging.bps_keluarga WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
    UNION ALL
    SELECT 'groundcheck.csv', line_no, NULL, no_kk, 'kemensos'
    FROM staging.kemensos_groundcheck WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s
),
reasons AS (
    SELECT q.file_name, q.line_no, q.reason_code, q.field
    FROM quality.rejection q WHERE q.round_seq = %(round_seq)s AND q.submission_pk = %(pk)s
    UNION ALL
    SELECT s.file_name, s.line_no, sub.reason_code, f.file_name
    FROM staged s CROSS JOIN sub
    JOIN ingest.submission_file f ON f.submission_pk = sub.submission_pk AND f.status = 'REJECTED'
    WHERE sub.status = 'REJECTED' AND sub.reason_code IN ('FILE_UNREADABLE', 'FILE_MISSING_COLUMN')
      AND s.source = (SELECT source FROM ingest.submission WHERE submission_pk = %(pk)s)
      AND NOT EXISTS (SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(round_seq)s
                      AND q.submission_pk = %(pk)s AND q.file_name = s.file_name AND q.line_no = s.line_no)
    UNION ALL
    SELECT f.file_name, NULL, coalesce(f.reason_code, sub.reason_code), ''
    FROM ingest.submission_file f CROSS JOIN sub
    WHERE f.submission_pk = sub.submission_pk
      AND (f.status = 'REJECTED' OR sub.reason_code IN ('CHECKSUM_MISMATCH', 'DUPLICATE_SUBMISSION'))
),
per_row AS (
    SELECT r.file_name, r.line_no,
           string_agg(r.reason_code, ';' ORDER BY r.reason_code, r.field) AS reason,
           string_agg(nullif(r.field, ''), ';' ORDER BY r.reason_code, r.field) AS field,
           string_agg(CASE WHEN r.field <> '' THEN 'Kolom ' || r.field || ': ' ELSE '' END || c.pesan, ' '
                      ORDER BY r.reason_code, r.field) AS message
    FROM reasons r JOIN quality.reason_code c ON c.code = r.reason_code
    GROUP BY r.file_name, r.line_no
)
SELECT p.file_name AS file, p.line_no AS line,
       meta.mask_for_feedback(s.nik) AS nik, meta.mask_for_feedback(s.no_kk) AS no_kk,
       p.reason, p.field,
       p.message || coalesce(
           ' Saran: data Dukcapil memuat penduduk dengan nama, tanggal lahir dan jenis kelamin yang cocok, '
           || 'dengan NIK ' || meta.mask_for_feedback(ns.suggested_nik::text)
           || ' (berbeda pada digit ke-' || ns.digits_differing || ' dari NIK yang dikirim). '
           || 'Periksa KTP/KK orang ini, lalu kirim ulang barisnya dengan NIK yang benar.', '') AS message
FROM per_row p
LEFT JOIN staged s ON s.file_name = p.file_name AND s.line_no = p.line_no
LEFT JOIN quality.nik_suggestion ns ON ns.round_seq = %(round_seq)s AND ns.submission_pk = %(pk)s
      AND ns.file_name = p.file_name AND ns.line_no = p.line_no
ORDER BY p.file_name, p.line_no NULLS FIRST
"""

COUNTS_SQL = """
SELECT file_name, coalesce(rows_received, 0),
       (SELECT count(DISTINCT q.line_no) FROM quality.rejection q
        WHERE q.round_seq = %(round_seq)s AND q.submission_pk = f.submission_pk AND q.file_name = f.file_name)
FROM ingest.submission_file f WHERE f.submission_pk = %(pk)s ORDER BY file_name
"""

REASON_COUNTS_SQL = """
SELECT reason_code, count(DISTINCT (file_name, line_no))
FROM quality.rejection WHERE round_seq = %(round_seq)s AND submission_pk = %(pk)s GROUP BY reason_code
"""


@dataclass
class FeedbackReport:
    submission_pk: int
    path: Path
    status: str
    rejected_rows: int


def _write_atomically(path: Path, data: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def write_feedback(conn: psycopg.Connection, submission_pk: int, publish_root: Path) -> FeedbackReport:
    round_seq, round_id, submission_id, status, reason_code, detail = conn.execute(
        "SELECT s.round_seq, r.round_id, s.submission_id, s.status, s.reason_code, s.detail "
        "FROM ingest.submission s JOIN ingest.round r USING (round_seq) WHERE s.submission_pk = %s",
        (submission_pk,),
    ).fetchone()
    params = {"pk": submission_pk, "round_seq": round_seq}
    folder = publish_root / "feedback" / round_id / submission_id
    folder.mkdir(parents=True, exist_ok=True)

    ditolak = folder / "ditolak.csv"
    partial = ditolak.with_name(".ditolak.csv.partial")
    written_rows = -1  # header
    with conn.cursor() as cur, open(partial, "wb") as out:
        # psycopg binds COPY parameters client-side; the query text is our own constant.
        with cur.copy(f"COPY ({REJECTED_ROWS_SQL}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            for chunk in copy:
                out.write(chunk)
                written_rows += bytes(chunk).count(b"\n")
    os.replace(partial, ditolak)

    rows, rejected_total = {}, 0
    for file_name, received, rejected in conn.execute(COUNTS_SQL, params).fetchall():
        if status == "REJECTED":
            rejected = received  # nothing of a rejected submission is merged
        rows[file_name] = {"received": received, "merged": received - rejected, "rejected": rejected}
        rejected_total += rejected
    reasons = dict(conn.execute(REASON_COUNTS_SQL, params).fetchall())
    if status == "REJECTED" and reason_code and reason_code not in reasons:
        reasons[reason_code] = sum(r["received"] for r in rows.values())
    warnings = [
        f"{name}: {w}"
        for name, ws in conn.execute(
            "SELECT file_name, warnings FROM ingest.submission_file WHERE submission_pk = %s ORDER BY file_name",
            (submission_pk,),
        )
        for w in ws
    ]
    if status == "REJECTED":
        summary_status = "REJECTED"
    elif rejected_total:
        summary_status = "PARTIAL"
    else:
        summary_status = "MERGED"
    ringkasan = {
        "submission_id": submission_id,
        "round_id": round_id,
        "status": summary_status,
        "rows": rows,
        "reasons": dict(sorted(reasons.items())),
        "warnings": warnings,
        "pesan": {code: REASON_BY_CODE[code].pesan for code in sorted(reasons)},
        "keterangan": REASON_BY_CODE[reason_code].pesan if status == "REJECTED" and reason_code else "",
    }
    _write_atomically(folder / "ringkasan.json", json.dumps(ringkasan, indent=2, ensure_ascii=False).encode())
    del detail  # operator detail stays in the warehouse; regions get the plain Indonesian message
    return FeedbackReport(submission_pk, folder, summary_status, max(written_rows, 0))
