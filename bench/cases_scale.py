"""Verification cases at 10M persons (issue 26): opening and closing cases, and the objections and
proposals behind them, at the size of a 10M-person registry.

    .venv/bin/python bench/cases_scale.py --persons 10000000 --out bench/results/2026-12-06-issue-26-cases-10m.json

A registry of --persons people in persons/3.1 families, spread over every village of the reference, is
written straight into a fresh warehouse (registry.family and its open memberships, set-based SQL; the
cases read nothing else of the registry), with rounds 1-12 registered and families last updated
anywhere from round 1 to 12 (so the stale origin finds its cap). Then two rounds of the cases' own work,
each timed part by part as the round runs it:
  round 11: version 1 publishes --implausible of the families as implausible; the aduan channel sends
    --objections of the families (objections by KK, proposals by a member's NIK, proposals for families
    not registered, a fifth of them repeated by other reporters, some bad rows); the validation's cross
    rules (`apply_cross_rules`, every rule of the round: the aduan ones have rows); the cases step
    (`run_round_cases`: results, expiry, opening from every origin); the outcome files (`write_outcomes`).
  round 12: Kemensos sends a field result for --visited of the live cases (half naming id_kasus); the
    channel sends as many new objections; the same three parts: now the step also closes and expires.
Each part's wall time is kept with the warehouse backend's memory (peak RSS, which counts the shared
buffers it read, and its private memory at the end) and this process's peak RSS. Beside
them, in the same run: one sequential read of the families and of the memberships (what reading the
registry once costs here), and the 10M quarterly round's stages as bench/national.py measured them on
this machine kind (the latest 10M quarterly line of bench/results/national.jsonl).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time
from pathlib import Path

import psycopg
from common import emit, fresh_database, header

from dtsen.cases.config import load_cases_config
from dtsen.cases.outcomes import write_outcomes
from dtsen.cases.rounds import run_round_cases
from dtsen.config import settings
from dtsen.validate.round import apply_cross_rules
from dtsen.warehouse import engine

KK0, NIK0 = 1_100_000_000_000_000, 1_200_000_000_000_000

WORLD_SQL = """
INSERT INTO ingest.round (round_id, status, reference_date)
SELECT format('%%s-Q%%s', 2024 + (i - 1) / 4, 1 + (i - 1) %% 4), 'PUBLISHED',
       make_date(2024 + (i - 1) / 4, 3 * (1 + (i - 1) %% 4), 28)
FROM generate_series(1, 12) i;
CREATE TEMP TABLE village AS SELECT row_number() OVER (ORDER BY kode) - 1 AS n, kode FROM ref.desa;
INSERT INTO registry.family (no_kk, kode_wilayah, alamat, created_round, updated_round)
SELECT %(kk0)s + i, v.kode, 'JL. CONTOH ' || i, 1, 1 + (i * 7919) %% 12
FROM generate_series(1::bigint, %(families)s) i
JOIN village v ON v.n = (i * 104729) %% (SELECT count(*) FROM village);
INSERT INTO registry.membership (nik, no_kk, hubungan_keluarga, valid_from_round)
SELECT %(nik0)s + j, %(kk0)s + 1 + (j - 1) %% %(families)s, CASE WHEN j <= %(families)s THEN 1 ELSE 3 END, 1
FROM generate_series(1::bigint, %(persons)s) j;
INSERT INTO publish.version (version, round_seq, status, published_at) VALUES (1, 10, 'PUBLISHED', now());
INSERT INTO publish.implausible_span (rule, no_kk, kode_wilayah, desil, valid_from)
SELECT 'aset_mewah', f.no_kk, f.kode_wilayah, 2, 1
FROM registry.family f WHERE f.no_kk %% 1000 < %(implausible_permille)s;
"""

SUBMISSION_SQL = """
INSERT INTO ingest.submission (round_seq, source, submission_id, status, submitted_at)
VALUES (%(r)s, %(source)s, %(id)s, 'STAGED', now()) RETURNING submission_pk
"""

# objections by KK (sanggah), proposals by a member's NIK (usul), proposals for families not registered,
# a fifth repeated by another reporter, and one row in 200 naming a family that does not exist
OBJECTIONS_SQL = """
INSERT INTO staging.aduan (round_seq, submission_pk, line_no, jenis, no_kk, nik, kode_wilayah, program, alasan,
                           tanggal_aduan, pelapor_ref)
SELECT %(r)s, %(pk)s, 1 + row_number() OVER (), o.*
FROM (
    SELECT CASE WHEN k %% 3 = 2 THEN 'USUL' ELSE 'SANGGAH' END,
           CASE WHEN k %% 3 = 2 THEN NULL
                WHEN k %% 200 = 0 THEN (%(kk0)s + %(families)s + k)::text
                ELSE (%(kk0)s + 1 + (k * %(stride)s) %% %(families)s)::text END,
           CASE WHEN k %% 3 = 2 THEN (%(nik0)s + 1 + (k * %(stride)s) %% %(persons)s)::text END,
           NULL, CASE WHEN k %% 3 = 2 THEN NULL ELSE 'pbi_jk' END,
           CASE WHEN k %% 3 = 2 THEN 'KONDISI_MEMBURUK' ELSE 'MAMPU' END,
           %(day)s, 'CB-' || %(r)s || '-' || k || '-' || copy
    FROM generate_series(1::bigint, %(objections)s) k, generate_series(1, 2) copy
    WHERE copy = 1 OR k %% 5 = 0
    UNION ALL
    SELECT 'USUL', (%(kk0)s + %(families)s + 10000000 + k)::text, NULL, v.kode, NULL, 'BELUM_TERDAFTAR', %(day)s,
           'CB-' || %(r)s || '-new-' || k
    FROM generate_series(1, %(objections)s / 10) k
    JOIN (SELECT kode, row_number() OVER (ORDER BY kode) AS n FROM ref.desa) v ON v.n = 1 + k %% 1000
) o;
"""

RESULTS_SQL = """
INSERT INTO staging.kemensos_groundcheck (round_seq, submission_pk, line_no, no_kk, tanggal_kunjungan, hasil, layak,
                                          petugas_id, id_kasus)
SELECT %(r)s, %(pk)s, 1 + row_number() OVER (ORDER BY c.id_kasus), c.no_kk::text, %(day)s,
       CASE WHEN c.id_kasus %% 10 = 0 THEN 'TIDAK_DITEMUKAN' ELSE 'DITEMUKAN' END, (c.id_kasus %% 2)::text,
       'PKH-' || left(c.kode_wilayah, 4), CASE WHEN c.id_kasus %% 2 = 0 THEN c.id_kasus::text END
FROM cases.verification_case c
WHERE c.state IN ('OPEN', 'ASSIGNED') AND c.id_kasus %% 100 < %(visited_percent)s
  AND EXISTS (SELECT 1 FROM registry.family f WHERE f.no_kk = c.no_kk)
"""


def backend_memory_mib(conn: psycopg.Connection) -> dict:
    """The warehouse backend's memory (this connection's process): its peak resident set (VmHWM, which
    counts the shared buffers it touched, so mostly the pages it read) and its private memory now
    (RssAnon: sorts, hashes, temp buffers)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {
        "backend_peak_rss_mib": round(int(fields["VmHWM"].split()[0]) / 1024, 1),
        "backend_private_mib": round(int(fields["RssAnon"].split()[0]) / 1024, 1),
    }


def timed(url: str, work) -> dict:
    """Run `work(conn)` in one transaction on a connection of its own: its backend's peak RSS is the
    part's own."""
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        started = time.perf_counter()
        with conn.transaction():
            summary = work(conn)
        return {
            "seconds": round(time.perf_counter() - started, 2),
            **backend_memory_mib(conn),
            "summary": summary,
        }


def a_round(conn, url: str, r: int, args, families: int, publish: Path, first: bool) -> dict:
    config = load_cases_config(settings().cases_config_path)
    reference = conn.execute("SELECT reference_date FROM ingest.round WHERE round_seq = %s", (r,)).fetchone()[
        0
    ]
    conn.execute(
        "SELECT staging.ensure_round_partitions(%s::smallint), quality.ensure_round_partitions(%s::smallint)",
        (r, r),
    )
    objections = max(1, int(families * args.objections))
    with conn.transaction():
        pk = conn.execute(SUBMISSION_SQL, {"r": r, "source": "aduan", "id": f"cekbansos-{r}"}).fetchone()[0]
        started = time.perf_counter()
        conn.execute(
            OBJECTIONS_SQL,
            {
                "r": r,
                "pk": pk,
                "kk0": KK0,
                "nik0": NIK0,
                "families": families,
                "persons": args.persons,
                "objections": objections,
                "stride": 7919 + r,
                "day": reference - dt.timedelta(days=40),
            },
        )
        rows = {
            "aduan": conn.execute("SELECT count(*) FROM staging.aduan WHERE round_seq = %s", (r,)).fetchone()[
                0
            ]
        }
        if not first:
            kem = conn.execute(
                SUBMISSION_SQL, {"r": r, "source": "kemensos", "id": f"kemensos-{r}"}
            ).fetchone()[0]
            conn.execute(
                RESULTS_SQL,
                {
                    "r": r,
                    "pk": kem,
                    "day": reference - dt.timedelta(days=20),
                    "visited_percent": round(args.visited * 100),
                },
            )
            rows["groundcheck"] = conn.execute(
                "SELECT count(*) FROM staging.kemensos_groundcheck WHERE round_seq = %s", (r,)
            ).fetchone()[0]
        staged = round(time.perf_counter() - started, 2)
    parts = {"stage_inputs": {"seconds": staged, "rows": rows}}
    parts["cross_rules"] = timed(url, lambda c: apply_cross_rules(c, r, None))
    rejected = dict(
        conn.execute(
            "SELECT reason_code, count(*) FROM quality.rejection WHERE round_seq = %s GROUP BY 1 ORDER BY 1",
            (r,),
        ).fetchall()
    )
    parts["cross_rules"]["summary"] = {"rejected": rejected}
    with conn.transaction():
        conn.execute("UPDATE ingest.submission SET status = 'MERGED' WHERE round_seq = %s", (r,))
    parts["cases_step"] = timed(
        url,
        lambda c: run_round_cases(
            c, r, config, reference_date=reference, version=1, small_family_max_members=2
        ),
    )
    parts["outcome_files"] = timed(url, lambda c: write_outcomes(c, r, f"round-{r}", publish))
    for part in parts.values():
        part.get("summary", {}).pop("done_before", None)
    parts["outcome_files"]["summary"]["files"] = len(parts["outcome_files"]["summary"]["files"])
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=10_000_000)
    parser.add_argument("--objections", type=float, default=0.01, help="objections per family and round")
    parser.add_argument(
        "--implausible", type=float, default=0.005, help="share of families flagged implausible"
    )
    parser.add_argument(
        "--visited", type=float, default=0.7, help="share of live cases with a field result in round 12"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench-cases"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = header("cases_scale", 26) | {
        "persons": args.persons,
        "objections_per_family": args.objections,
        "implausible_share": args.implausible,
        "visited_share": args.visited,
    }
    families = round(args.persons / 3.1)
    url = fresh_database(f"dtsen_bench_cases_{args.persons}")
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        started = time.perf_counter()
        with conn.transaction():
            for statement in filter(str.strip, WORLD_SQL.split(";\n")):
                conn.execute(
                    statement,
                    {
                        "kk0": KK0,
                        "nik0": NIK0,
                        "families": families,
                        "persons": args.persons,
                        "implausible_permille": round(args.implausible * 1000),
                    },
                )
        conn.execute("ANALYZE registry.family; ANALYZE registry.membership; ANALYZE publish.implausible_span")
        result["registry"] = {
            "families": families,
            "memberships": args.persons,
            "built_seconds": round(time.perf_counter() - started, 1),
        }
        reference = {}
        for name, query in (
            ("read_families_once", "SELECT count(*) FROM registry.family WHERE is_open"),
            (
                "read_memberships_once",
                "SELECT count(*) FROM registry.membership WHERE valid_to_round IS NULL",
            ),
        ):
            begun = time.perf_counter()
            conn.execute(query).fetchone()
            reference[name] = round(time.perf_counter() - begun, 2)
        result["reference_same_run"] = reference
        publish = args.work / "publish"
        result["round_11_opening"] = a_round(conn, url, 11, args, families, publish, first=True)
        result["round_12_closing"] = a_round(conn, url, 12, args, families, publish, first=False)
        result["cases"] = dict(
            conn.execute(
                "SELECT state, count(*) FROM cases.verification_case GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    result["bench_peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    national = Path(__file__).parent / "results" / "national.jsonl"
    tenm = [
        json.loads(line)
        for line in national.read_text().splitlines()
        if '"size": 10000000' in line and '"quarterly"' in line
    ]
    if tenm:
        result["national_10m_quarterly_stages"] = {
            "measured": tenm[-1]["date"],
            "by": "bench/national.py (another run, the same machine kind)",
            "seconds_total": tenm[-1]["seconds_total"],
            "stages": tenm[-1]["stages"],
        }
    emit(result, args.out)


if __name__ == "__main__":
    main()
