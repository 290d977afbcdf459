"""Benchmark: a Dukcapil extract processed by difference, against a raw COPY of the same file.

    .venv/bin/python bench/dukcapil_diff.py --rows 10000000 --changed 0.01

A fresh database loads a first extract of --rows persons (the reference), then a second extract of
the same size in which --changed of the rows differ: deaths, corrected names, new NIKs and vanished
NIKs in equal parts. Timed for the second one, in one run: staging (COPY with line accounting), the
comparison with the reference and its writes, the row-level validation of the differing lines, and
the whole; beside a plain COPY of the same file into an unlogged table with one text column per field
(the floor). Target (issue 12): the whole <= 2 x the raw COPY. Peak RSS of this process is printed.
Extracts are written by PostgreSQL itself (COPY ... TO STDOUT), cached under --work.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import time
from pathlib import Path

import psycopg
from common import emit, fresh_database

from dtsen.ingest import dukcapil
from dtsen.validate.round import validate_snapshot
from dtsen.warehouse import engine

# Person i: a district, a birth date and serial that make its NIK unique; the NIK, KK and identity
# follow the contract's rules, so every row is usable. `changed` rows of the second extract differ.
EXTRACT = """
COPY (
  WITH districts AS (SELECT (row_number() OVER (ORDER BY code) - 1)::int AS n, code
                     FROM (SELECT DISTINCT left(kode, 6) AS code FROM ref.desa) x),
  villages AS (SELECT (row_number() OVER (ORDER BY kode) - 1)::int AS n, kode FROM ref.desa),
  sizes AS (SELECT (SELECT count(*) FROM districts)::int AS nd, (SELECT count(*) FROM villages)::int AS nv),
  p AS (
    SELECT i, (i %% sizes.nd)::int AS dn, (i %% sizes.nv)::int AS vn,
           DATE '1940-01-01' + ((i / sizes.nd) %% 25000)::int AS born, (1 + (i / 7) %% 2)::int AS sex
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) i, sizes
  )
  SELECT d.code || lpad((extract(day FROM p.born)::int + CASE WHEN p.sex = 2 THEN 40 ELSE 0 END)::text, 2, '0')
           || to_char(p.born, 'MMYY') || '0001' AS nik,
         left(v.kode, 6) || to_char(DATE '2000-01-01' + (p.i %% 7000)::int, 'DDMMYY')
           || lpad((1 + p.i %% 9999)::text, 4, '0') AS no_kk,
         CASE WHEN %(second)s AND p.i %% %(every)s = 1 THEN 'Nama Koreksi ' ELSE 'Nama ' END || p.i AS nama,
         p.sex AS jenis_kelamin, p.born AS tanggal_lahir, v.kode AS kode_wilayah,
         CASE WHEN %(second)s AND p.i %% %(every)s = 2 THEN 'MENINGGAL' ELSE 'HIDUP' END AS status_hidup,
         CASE WHEN %(second)s AND p.i %% %(every)s = 2 THEN '2026-05-01' END AS tanggal_meninggal
  FROM p JOIN districts d ON d.n = p.dn JOIN villages v ON v.n = p.vn
  WHERE NOT (%(second)s AND p.i %% %(every)s = 3)
  ORDER BY p.i
) TO STDOUT (FORMAT csv, HEADER true)
"""


def write_extract(conn: psycopg.Connection, path: Path, rows: int, changed: float, second: bool) -> None:
    if path.exists():
        return
    every = max(4, round(4 / changed))  # 4 kinds of change: one row in `every` each
    # the vanished quarter is replaced by as many new NIKs past the end
    extra = rows // every if second else 0
    tmp = path.with_suffix(".tmp")
    with (
        tmp.open("wb") as fh,
        conn.cursor().copy(
            EXTRACT, {"first": 1, "last": rows + extra, "second": second, "every": every}
        ) as copy,
    ):
        for chunk in copy:
            fh.write(chunk)
    tmp.rename(path)


def raw_copy_seconds(url: str, path: Path) -> float:
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("CREATE UNLOGGED TABLE raw_extract (" + ", ".join(f"c{i} text" for i in range(8)) + ")")
        started = time.monotonic()
        with conn.cursor() as cur, path.open("rb") as fh:
            with cur.copy("COPY raw_extract FROM STDIN (FORMAT csv, HEADER true)") as copy:
                while chunk := fh.read(1 << 20):
                    copy.write(chunk)
        return time.monotonic() - started


def load(
    conn: psycopg.Connection, landing: Path, raw: Path, day: str, timings: dict
) -> dukcapil.SnapshotOutcome:
    """Load and validate the snapshot of `day`, timing its parts into `timings`."""
    stage_file, sort, write = dukcapil.stage_file, dukcapil.sort_differences, dukcapil.write_differences
    statements: dict = {}
    marks: dict = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            started = time.monotonic()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[name] = round(time.monotonic() - started, 1)

        return run

    # typing, sorting, the plausibility check and writing, from the first to the last (the same span
    # as "type_and_apply_differences" measured before the check existed)
    def sort_keeping_timings(conn, snapshot_pk, base_pk, found_timings):
        marks["sorting"] = time.monotonic()
        return sort(conn, snapshot_pk, base_pk, found_timings)

    def write_keeping_timings(conn, snapshot_pk, base_pk, base_kept, found_timings):
        marks["writing"] = time.monotonic()
        result = write(conn, snapshot_pk, base_pk, base_kept, found_timings)
        timings["plausibility_check"] = round(
            marks["writing"]
            - marks["sorting"]
            - sum(found_timings.get(k, 0) for k in ("conflicting", "usable", "analyze_usable")),
            2,
        )
        timings["type_and_apply_differences"] = round(time.monotonic() - marks["sorting"], 1)
        statements.update(found_timings)
        return result

    dukcapil.stage_file = timed("copy_compare_and_stage_differences", stage_file)
    dukcapil.sort_differences = sort_keeping_timings
    dukcapil.write_differences = write_keeping_timings
    try:
        started = time.monotonic()
        with conn.transaction():
            outcome = dukcapil.ingest_latest_snapshot(conn, landing, raw, dt.date.fromisoformat(day))
            timings["load"] = round(time.monotonic() - started, 1)
            validate_snapshot(conn, outcome.snapshot_pk)
        timings["validate_differing_lines"] = round(time.monotonic() - started - timings["load"], 1)
        timings["whole"] = round(time.monotonic() - started, 1)
        timings["statements"] = {k: round(v, 1) for k, v in statements.items()}
    finally:
        dukcapil.stage_file, dukcapil.sort_differences, dukcapil.write_differences = stage_file, sort, write
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, help="append the result as a JSON line here")
    args = parser.parse_args()
    url = fresh_database(f"dtsen_bench_dukcapil_{args.rows}", engine.database_url())
    folder = args.work / f"dukcapil-{args.rows}-{args.changed}"
    landing, raw = folder / "landing", folder / "raw"
    paths = {
        day: landing / "reference" / "dukcapil" / day / "penduduk.csv" for day in ("2026-03-28", "2026-06-27")
    }
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        for path, second in zip(paths.values(), (False, True), strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            write_extract(conn, path, args.rows, args.changed, second)
        hidden = paths["2026-06-27"].parent.rename(folder / "later")  # only the first is visible at first
        first_timings: dict = {}
        load(conn, landing, raw, "2026-03-31", first_timings)
        hidden.rename(paths["2026-06-27"].parent)
        timings: dict = {}
        outcome = load(conn, landing, raw, "2026-06-30", timings)
        diff = conn.execute(
            "SELECT diff FROM ingest.dukcapil_snapshot WHERE snapshot_pk = %s", (outcome.snapshot_pk,)
        ).fetchone()[0]
    raw_url = fresh_database(f"dtsen_bench_dukcapil_raw_{args.rows}", engine.database_url())
    raw_seconds = raw_copy_seconds(raw_url, paths["2026-06-27"])
    result = {
        "bench": "dukcapil_diff",
        "rows": outcome.rows_received,
        "changed_share": args.changed,
        "diff": diff,
        "first_extract_seconds": first_timings,
        "second_extract_seconds": timings,
        "raw_copy_seconds": round(raw_seconds, 1),
        "ratio_to_raw_copy": round(timings["whole"] / raw_seconds, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
