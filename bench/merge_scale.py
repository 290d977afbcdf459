"""Benchmark: merge a round of 1M changed persons into registries of 2M and 10M persons (issue 4).

    .venv/bin/python bench/merge_scale.py --registry 2000000 10000000 --changed 1000000

For each registry size, once (cached under --work):
  1. generate a one-round world of that size (the generator's round-1 truth is the baseline);
  2. load the baseline straight into the registry (COPY from the truth; the Dukcapil snapshot through
     the real ingest), as if round 2026-Q1 had been merged: building 10M persons through validation
     would measure validation, not the merge;
  3. write round 2026-Q2 to a landing zone: one pemda submission per regency with an UBAH of
     status_pekerjaan for every k-th person (1M rows), and the same Dukcapil extract re-dated.
Then, timed: stage + validate 2026-Q2 (printed, not the target); the merge of 2026-Q2 (with history,
provenance, conflict ranking, Dukcapil changes, invariants); and, in the same run, the reference: a
plain INSERT ... ON CONFLICT DO UPDATE of the same rows into a bare copy of the persons table (no
partitions, no history). Target: merge >= 0.5 x reference rate, and merge time about equal for 2M
and 10M (it must grow with the round, not the registry).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import shutil
import time
from pathlib import Path

import psycopg
from common import fresh_database, generated_world

from dtsen.domain.codes import MEMBER_ATTRIBUTES
from dtsen.round import RoundContext, run_round
from dtsen.warehouse import engine
from dtsen_dev.evaluate import copy_truth_csv
from dtsen_dev.generate.rows import ANGGOTA_COLUMNS, KELUARGA_COLUMNS
from dtsen_dev.generate.run import write_manifest

BASE_ROUND, CHANGE_ROUND, CHANGE_SNAPSHOT = "2026-Q1", "2026-Q2", "2026-06-27"


def prepare_landing(world: Path, work: Path) -> Path:
    """The bench's landing zone: the world's Dukcapil extract under its own date and re-dated for the
    change round (hard links: no copy, and no symlink the landing checks would refuse)."""
    landing = work / "landing"
    shutil.rmtree(landing, ignore_errors=True)
    (landing / BASE_ROUND).mkdir(parents=True)
    source = sorted((world / "landing" / "reference" / "dukcapil").iterdir())[-1]
    for date in (source.name, CHANGE_SNAPSHOT):
        folder = landing / "reference" / "dukcapil" / date
        folder.mkdir(parents=True)
        os.link(source / "penduduk.csv", folder / "penduduk.csv")
    return landing


def load_baseline(conn: psycopg.Connection, world: Path, landing: Path, raw: Path) -> float:
    started = time.monotonic()
    opened = run_round(
        RoundContext.create(BASE_ROUND, landing_root=landing, raw_root=raw), until="open_round"
    )
    round_seq = opened["open_round"]["round_seq"]
    truth = world / "truth" / BASE_ROUND
    cols = ", ".join(copy_truth_csv(conn, truth / "expected_keluarga.csv.gz", "t_kel"))
    conn.execute(
        f"INSERT INTO registry.family ({cols}, created_round, updated_round) "  # noqa: S608
        f"SELECT {cols}, %(r)s, %(r)s FROM t_kel",
        {"r": round_seq},
    )
    copy_truth_csv(conn, truth / "expected_anggota.csv.gz", "t_ang")
    person = ", ".join(("nik", "nama", "jenis_kelamin", "tanggal_lahir", *MEMBER_ATTRIBUTES))
    conn.execute(
        f"INSERT INTO registry.person ({person}, created_round, updated_round) "  # noqa: S608
        f"SELECT {person}, %(r)s, %(r)s FROM t_ang",
        {"r": round_seq},
    )
    conn.execute(
        "INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round, source) "
        "SELECT nik, no_kk, hubungan_keluarga, %(r)s, 'pemda' FROM t_ang",
        {"r": round_seq},
    )
    conn.execute(
        "UPDATE ingest.round SET status = 'MERGED', merged_at = now() WHERE round_seq = %s",
        (round_seq,),
    )
    conn.commit()
    for table in ("registry.family", "registry.person", "registry.membership"):
        conn.execute(f"ANALYZE {table}")
    conn.commit()
    return time.monotonic() - started


def write_change_round(world: Path, landing: Path, every: int) -> int:
    """Pemda submissions of the change round: an UBAH of status_pekerjaan for every `every`-th person."""
    round_dir = landing / CHANGE_ROUND
    shutil.rmtree(round_dir, ignore_errors=True)
    writers, handles, rows = {}, [], 0
    with gzip.open(world / "truth" / BASE_ROUND / "expected_anggota.csv.gz", "rt", newline="") as fh:
        for i, person in enumerate(csv.DictReader(fh)):
            if i % every:
                continue
            kab = person["no_kk"][:4]
            if kab not in writers:
                folder = round_dir / "pemda" / f"{kab}-2026Q2-01"
                folder.mkdir(parents=True)
                with open(folder / "keluarga.csv", "w", newline="") as kel:
                    csv.writer(kel).writerow(KELUARGA_COLUMNS)
                out = open(folder / "anggota.csv", "w", newline="")  # noqa: SIM115 (closed below)
                handles.append((out, folder, kab))
                writers[kab] = csv.writer(out)
                writers[kab].writerow(ANGGOTA_COLUMNS)
            row = dict.fromkeys(ANGGOTA_COLUMNS, "")
            row.update(
                operasi="UBAH",
                nik=person["nik"],
                no_kk=person["no_kk"],
                status_pekerjaan="2" if person["status_pekerjaan"] == "1" else "1",
            )
            writers[kab].writerow([row[c] for c in ANGGOTA_COLUMNS])
            rows += 1
    for out, folder, kab in handles:
        out.close()
        write_manifest(
            folder,
            "pemda",
            folder.name,
            CHANGE_ROUND,
            kab,
            dt.datetime(2026, 6, 20, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=7))),
            f"dinsos.{kab}",
        )
    return rows


REFERENCE_SQL = """
INSERT INTO bench_person_bare AS t (nik, status_perkawinan, pendidikan_tertinggi, status_sekolah, status_pekerjaan,
                                    disabilitas, penyakit_kronis)
SELECT nik::bigint, nullif(status_perkawinan, '')::smallint, nullif(pendidikan_tertinggi, '')::smallint,
       nullif(status_sekolah, '')::smallint, nullif(status_pekerjaan, '')::smallint,
       nullif(disabilitas, '')::smallint, nullif(penyakit_kronis, '')::smallint
FROM staging.pemda_anggota WHERE round_seq = %(r)s
ON CONFLICT (nik) DO UPDATE SET
    status_perkawinan = coalesce(EXCLUDED.status_perkawinan, t.status_perkawinan),
    pendidikan_tertinggi = coalesce(EXCLUDED.pendidikan_tertinggi, t.pendidikan_tertinggi),
    status_sekolah = coalesce(EXCLUDED.status_sekolah, t.status_sekolah),
    status_pekerjaan = coalesce(EXCLUDED.status_pekerjaan, t.status_pekerjaan),
    disabilitas = coalesce(EXCLUDED.disabilitas, t.disabilitas),
    penyakit_kronis = coalesce(EXCLUDED.penyakit_kronis, t.penyakit_kronis)
"""


def explain_slow_statements(conn: psycopg.Connection, out: Path) -> None:
    """auto_explain at NOTICE level, so the plans come back to this client rather than the server log."""
    sink = out.open("w")
    conn.add_notice_handler(lambda diag: sink.write(f"{diag.message_primary}\n\n") or sink.flush())
    conn.execute("LOAD 'auto_explain'")
    for setting, value in {
        "log_min_duration": "2s",
        "log_analyze": "on",
        "log_buffers": "on",
        "log_level": "notice",
        "log_nested_statements": "on",
    }.items():
        conn.execute(f"SET auto_explain.{setting} = '{value}'")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", type=int, nargs="+", default=[2_000_000, 10_000_000])
    parser.add_argument("--changed", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument(
        "--explain", type=Path, help="write EXPLAIN ANALYZE of every merge statement over 2 s to this file"
    )
    args = parser.parse_args()

    for size in args.registry:
        world = generated_world(size, 1, args.work, name=f"gen-{size}")
        work = args.work / f"merge-{size}"
        work.mkdir(parents=True, exist_ok=True)
        url = fresh_database(f"dtsen_merge_{size}")
        os.environ["DTSEN_DATABASE_URL"] = url
        os.environ["DTSEN_RAW_ROOT"] = str(work / "raw")
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            landing = prepare_landing(world, work)
            baseline_seconds = load_baseline(conn, world, landing, work / "raw")
            persons = conn.execute("SELECT count(*) FROM registry.person").fetchone()[0]
            conn.commit()
            rows = write_change_round(world, landing, max(1, persons // args.changed))
            ctx = RoundContext.create(CHANGE_ROUND, landing_root=landing, publish_root=work / "publish")
            started = time.monotonic()
            validated = run_round(ctx, until="finish_validation")
            validate_seconds = time.monotonic() - started
            round_seq = validated["open_round"]["round_seq"]
            rejected = conn.execute(
                "SELECT count(DISTINCT (submission_pk, file_name, line_no)) FROM quality.rejection WHERE round_seq = %s",
                (round_seq,),
            ).fetchone()[0]
            conn.commit()
            if args.explain:
                explain_slow_statements(conn, args.explain)
            started = time.monotonic()
            run_round(ctx, only=("merge",))  # the round's own merge step
            merge_seconds = time.monotonic() - started
            merged = conn.execute(
                "SELECT merge_summary FROM ingest.round WHERE round_seq = %s", (round_seq,)
            ).fetchone()[0]
            conn.commit()
            conn.execute("CREATE TABLE bench_person_bare AS SELECT * FROM registry.person")
            conn.execute("ALTER TABLE bench_person_bare ADD PRIMARY KEY (nik)")
            conn.execute("ANALYZE bench_person_bare")
            conn.commit()
            started = time.monotonic()
            conn.execute(REFERENCE_SQL, {"r": round_seq})
            conn.commit()
            reference_seconds = time.monotonic() - started
        print(
            json.dumps(
                {
                    "registry_persons": persons,
                    "changed_rows": rows,
                    "rejected_rows": rejected,
                    "baseline_load_seconds": round(baseline_seconds, 1),
                    "stage_validate_seconds": round(validate_seconds, 1),
                    "merge_seconds": round(merge_seconds, 1),
                    "merge_rows_per_s": round(rows / merge_seconds),
                    "reference_upsert_seconds": round(reference_seconds, 1),
                    "reference_rows_per_s": round(rows / reference_seconds),
                    "ratio": round(reference_seconds / merge_seconds, 3),
                    "persons_updated": merged["changes"].get("persons updated"),
                    "slowest_merge_steps": {
                        name: round(seconds, 1)
                        for name, seconds in sorted(merged["step_seconds"].items(), key=lambda kv: -kv[1])[:8]
                    },
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
