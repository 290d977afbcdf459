"""Scale model of a national round (issue 12, part 5).

    .venv/bin/python bench/national.py --sizes 1000000 3000000 10000000
    .venv/bin/python bench/national.py --fit-only          # refit and print from the kept points
    .venv/bin/python bench/national.py --fit-only --fit-sizes 1000000 3000000   # on these sizes only
    .venv/bin/python bench/national.py --sizes 1000000 --sessions 1 2   # each size with 1, then 2 sessions

For each registry size, a generated two-round world (seed 7) goes through the round's own steps
(`dtsen.round.STEPS` and NOTIFY_PROGRAMS, as the DAG runs them) in a database of its own:
  - round 2026-Q1 is the first load: an empty warehouse to version 1, the whole Dukcapil extract new;
  - round 2026-Q2 is a quarterly round: the generator's churn (a few percent of persons and families)
    and a Dukcapil extract of which about 1% differs.
Each stage is timed (ingest + validate, Dukcapil, merge, rank, audit, publish, feedback, notify)
with the round's size: input rows, registry persons, extract rows and the extract's changed lines.
After the quarterly round, in the same run, two references: the same candidate built whole and
audited (in a transaction rolled back), and a plain `COPY (...) TO STDOUT` of the published files.

Every measured point is appended to --out as one JSON line with the machine it ran on. A size whose
two rounds are in --out is skipped; a size whose first load is there and whose database still holds
it resumes at the quarterly round (an interrupted run loses at most the round it was in).

The model: each stage's seconds fitted as fixed + a * persons + b * input rows (the Dukcapil stage:
fixed + a * extract rows + b * changed lines), least squares with every term >= 0 over the newest
one-session point of each size and round (older runs of a size measured code since replaced; first
loads and quarterly rounds differ in input rows per person, which separates the terms). It prints the
extrapolated national quarterly round (289M persons, 10M input rows, a 289M-row extract with 1%
changed) and the first national load, on this machine and on a 16-core warehouse host under the
assumptions printed beside them. With --sessions, each size is measured once per session count
(the candidate's writer sessions, and the processes a parallel plan may use); the model is fitted on
one session, and a stage measured with 1 and 2 takes its 16-core speedup from Amdahl's law over the
parallel share those imply, instead of the assumption.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import psycopg
from common import (
    cpu_statements,
    emit,
    finish_generation,
    fresh_database,
    in_sessions,
    raw_copy_rate,
    reference_copy_seconds,
    start_generation,
    wait_for_round,
)
from sklearn.linear_model import LinearRegression

from dtsen.round import NOTIFY_PROGRAMS, RoundContext, run_round
from dtsen.warehouse import engine

ROUNDS = {"2026-Q1": "first_load", "2026-Q2": "quarterly"}
# stage -> the round steps it is made of (rank and audit are split inside rank_and_audit)
STAGES: dict[str, tuple[str, ...]] = {
    "dukcapil": ("open_round",),
    "ingest_validate": ("stage_and_validate", "finish_validation"),
    "merge": ("merge",),
    "integrity": ("integrity",),
    "cases": ("cases", "aduan_outcomes"),  # verification cases: results, expiry, opening (issue 26)
    "feedback": ("feedback",),
    "publish": ("publish",),
    "notify": ("notify_regions", "notify_programs"),
}
MODEL_STAGES = ("ingest_validate", "dukcapil", "merge", "rank", "audit", "publish", "feedback", "notify")
NATIONAL = {
    "quarterly": {
        "persons": 289_000_000,
        "input_rows": 10_000_000,
        "extract_rows": 289_000_000,
        "changed": 2_890_000,
    },
    "first_load": {
        "persons": 289_000_000,
        "input_rows": 289_000_000 + 95_000_000,  # every person and family, once
        "extract_rows": 289_000_000,
        "changed": 289_000_000,
    },
}
# A 16-core warehouse host: how many times faster each stage runs there, and why.
# The stages that use more than one core: the rank stage's writes and the audit's members and
# families are split over sessions (DTSEN_WRITE_SESSIONS), and the rank stage, the merge and the
# Dukcapil comparison build their scratch tables with CREATE TABLE AS over unlogged tables, which
# PostgreSQL may plan in parallel. Their 16-core speedup is taken from 1 and 2 sessions (and as many
# processes per parallel plan). The others' measured ratios are printed too, as the noise between two
# runs of code that runs the same either way.
SESSION_STAGES = ("rank", "merge", "dukcapil", "audit")
SIXTEEN_CORES = {
    "ingest_validate": (
        14 * 0.69,
        "submissions are independent tasks: 14 Airflow workers (2 cores left to the scheduler and "
        "api-server) at the 0.69 per-worker efficiency measured with 2 workers on 2 cores",
    ),
    "dukcapil": (
        1.0,
        "one backend, unless measured with 1 and 2 sessions (--sessions): its keying, comparison, "
        "checks and the snapshot's row rules may get parallel workers, its writes and the COPY do "
        "not; then Amdahl's law",
    ),
    "merge": (
        1.0,
        "one backend, unless measured with 1 and 2 sessions (--sessions): its writes get no parallel "
        "workers in PostgreSQL 15, its scratch tables' CREATE TABLE AS may; then Amdahl's law",
    ),
    "rank": (1.0, "one backend, unless measured with 1 and 2 sessions (--sessions): then Amdahl's law"),
    "audit": (
        1.0,
        "one backend, unless measured with 1 and 2 sessions (--sessions): its members and families are "
        "computed in shares by key, one session each, the checks in one; then Amdahl's law",
    ),
    "publish": (None, "one stream per file: the largest file (anggota.parquet) alone sets the time"),
    "feedback": (14 * 0.69, "per submission, like ingest"),
    "notify": (1.0, "a few emails per region and program"),
}


def peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def done_points(out: Path) -> list[dict]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def round_size(conn: psycopg.Connection, round_id: str) -> dict:
    """What the round was: input rows, registry after it, the extract and how much of it changed."""
    input_rows = conn.execute(
        "SELECT coalesce(sum(f.rows_received), 0) FROM ingest.submission_file f "
        "JOIN ingest.submission s USING (submission_pk) JOIN ingest.round r USING (round_seq) "
        "WHERE r.round_id = %s",
        (round_id,),
    ).fetchone()[0]
    persons, families = conn.execute(
        "SELECT (SELECT count(*) FROM registry.person WHERE is_open), "
        "(SELECT count(*) FROM registry.family WHERE is_open)"
    ).fetchone()
    extract = conn.execute(
        "SELECT d.rows_received, (SELECT count(*) FROM ref.dukcapil_change c WHERE c.snapshot_pk = d.snapshot_pk) "
        "FROM ingest.round r JOIN ingest.dukcapil_snapshot d ON d.snapshot_pk = r.dukcapil_snapshot_pk "
        "WHERE r.round_id = %s",
        (round_id,),
    ).fetchone() or (0, 0)
    return {
        "input_rows": int(input_rows),
        "persons": persons,
        "families": families,
        "extract_rows": int(extract[0] or 0),
        "changed": int(extract[1]),
    }


def parallel_reference(url: str) -> dict:
    """What this machine gives two sessions over one, outside the project, in the same run: the
    version's current members inserted into an empty copy of publish.anggota_span with its indexes
    (split into two key ranges, as the candidate's writers split it), and pure computation (a hash
    summed over 20M integers, split in two)."""
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS public.bench_span, public.bench_rows")
        conn.execute("CREATE TABLE public.bench_span (LIKE publish.anggota_span INCLUDING ALL)")
        conn.execute(
            "CREATE UNLOGGED TABLE public.bench_rows AS SELECT * FROM publish.anggota_span WHERE valid_to IS NULL"
        )
        median = conn.execute(
            "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY nik) FROM public.bench_rows"
        ).fetchone()[0]
        rows = conn.execute("SELECT count(*) FROM public.bench_rows").fetchone()[0]
        insert = "INSERT INTO public.bench_span SELECT * FROM public.bench_rows WHERE "
        result: dict = {"insert_rows": rows}
        for sessions in (1, 2):
            conn.execute("TRUNCATE public.bench_span")
            conn.execute("CHECKPOINT")
            split = [f"nik < {int(median)}", f"nik >= {int(median)}"] if sessions == 2 else ["true"]
            result[f"insert_{sessions}"] = round(in_sessions(url, [insert + w for w in split]), 2)
            result[f"cpu_{sessions}"] = round(in_sessions(url, cpu_statements(sessions)), 2)
        conn.execute("DROP TABLE public.bench_span, public.bench_rows")
    result["insert_speedup"] = round(result["insert_1"] / result["insert_2"], 2)
    result["cpu_speedup"] = round(result["cpu_1"] / result["cpu_2"], 2)
    return result


def whole_rebuild_seconds(conn: psycopg.Connection, round_id: str) -> dict:
    """The reference: the same round's candidate built whole and audited, then rolled back."""
    from dtsen.programs import load_programs
    from dtsen.publish.audit import audit_version
    from dtsen.publish.candidate import build_candidate
    from dtsen.rank.model import load_model

    with conn.transaction(force_rollback=True):
        version, previous = conn.execute(
            "SELECT v.version, v.previous_version FROM publish.version v JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = %s AND v.status <> 'DISCARDED'",
            (round_id,),
        ).fetchone()
        conn.execute("UPDATE publish.version SET status = 'DISCARDED' WHERE version = %s", (version,))
        conn.execute("UPDATE publish.version SET status = 'PUBLISHED' WHERE version = %s", (previous,))
        conn.execute("UPDATE ingest.round SET status = 'MERGED' WHERE round_id = %s", (round_id,))
        started = time.perf_counter()
        built = build_candidate(conn, round_id, load_model(), load_programs())
        candidate = time.perf_counter() - started
        started = time.perf_counter()
        audit_version(conn, built.version)
        audit = time.perf_counter() - started
    assert built.build["mode"] == "whole", built.build
    return {"candidate": round(candidate, 1), "audit": round(audit, 1)}


def _accepted(table: str, file_name: str) -> str:
    return f"""FROM staging.{table} s WHERE s.round_seq = %(r)s AND NOT EXISTS (
        SELECT 1 FROM quality.rejection q WHERE q.round_seq = %(r)s AND q.submission_pk = s.submission_pk
        AND q.file_name = '{file_name}' AND q.line_no = s.line_no)"""  # noqa: S608 (bench constants)


def merge_floor_seconds(conn: psycopg.Connection, round_id: str) -> float:
    """The merge's raw-write floor: the round's accepted pemda rows upserted into bare copies of the
    person and family tables, and as many history and membership rows as the merge wrote inserted,
    by plain SQL with no checks (no conflicts, no invariants, no provenance, no partitions)."""
    from dtsen.domain.codes import FAMILY_ATTRIBUTE_FIELDS, MEMBER_ATTRIBUTE_FIELDS

    r = conn.execute("SELECT round_seq FROM ingest.round WHERE round_id = %s", (round_id,)).fetchone()[0]
    for bare, source, key in (
        ("bench_person", "registry.person", "nik"),
        ("bench_family", "registry.family", "no_kk"),
    ):
        conn.execute(f"DROP TABLE IF EXISTS {bare}")
        conn.execute(f"CREATE TABLE {bare} AS SELECT * FROM {source}")  # noqa: S608
        conn.execute(f"ALTER TABLE {bare} ADD PRIMARY KEY ({key})")
    conn.execute("DROP TABLE IF EXISTS bench_history, bench_membership")
    conn.execute("CREATE TABLE bench_history (LIKE registry.field_change)")
    conn.execute("CREATE TABLE bench_membership (LIKE registry.membership)")
    conn.commit()
    member = [f.name for f in MEMBER_ATTRIBUTE_FIELDS]
    family = [f.name for f in FAMILY_ATTRIBUTE_FIELDS]
    member_types = {f.name: f.sql_type for f in MEMBER_ATTRIBUTE_FIELDS}
    family_types = {f.name: f.sql_type for f in FAMILY_ATTRIBUTE_FIELDS}
    persons = f"""
        INSERT INTO bench_person AS t (nik, nama, jenis_kelamin, tanggal_lahir, {", ".join(member)},
                                       created_round, updated_round)
        SELECT DISTINCT ON (s.nik::bigint) s.nik::bigint, s.nama, s.jenis_kelamin::smallint,
               s.tanggal_lahir::date, {", ".join(f"s.{a}::{member_types[a]}" for a in member)}, %(r)s, %(r)s
        {_accepted("pemda_anggota", "anggota.csv")}
        ORDER BY s.nik::bigint, s.line_no DESC
        ON CONFLICT (nik) DO UPDATE SET nama = EXCLUDED.nama, tanggal_lahir = EXCLUDED.tanggal_lahir,
            {", ".join(f"{a} = EXCLUDED.{a}" for a in member)}, updated_round = EXCLUDED.updated_round"""
    families = f"""
        INSERT INTO bench_family AS t (no_kk, kode_wilayah, alamat, {", ".join(family)}, created_round, updated_round)
        SELECT DISTINCT ON (s.no_kk::bigint) s.no_kk::bigint, s.kode_wilayah, s.alamat,
               {", ".join(f"s.{a}::{family_types[a]}" for a in family)}, %(r)s, %(r)s
        {_accepted("pemda_keluarga", "keluarga.csv")}
        ORDER BY s.no_kk::bigint, s.line_no DESC
        ON CONFLICT (no_kk) DO UPDATE SET kode_wilayah = EXCLUDED.kode_wilayah, alamat = EXCLUDED.alamat,
            {", ".join(f"{a} = EXCLUDED.{a}" for a in family)}, updated_round = EXCLUDED.updated_round"""
    started = time.perf_counter()
    conn.execute(persons, {"r": r})
    conn.execute(families, {"r": r})
    conn.execute(
        "INSERT INTO bench_history SELECT * FROM registry.field_change WHERE round_seq = %(r)s", {"r": r}
    )
    conn.execute(
        "INSERT INTO bench_membership SELECT * FROM registry.membership WHERE valid_from_round = %(r)s",
        {"r": r},
    )
    conn.commit()
    seconds = time.perf_counter() - started
    conn.execute("DROP TABLE bench_person, bench_family, bench_history, bench_membership")
    conn.commit()
    return seconds


def publication_reference(conn: psycopg.Connection, version: int) -> float:
    from dtsen.programs import load_programs
    from dtsen.publish.version import version_files

    previous = conn.execute(
        "SELECT previous_version FROM publish.version WHERE version = %s", (version,)
    ).fetchone()[0]
    files = version_files(sorted(p.id for p in load_programs().programs))
    seconds, _ = reference_copy_seconds(
        conn, files, {"version": version, "previous": previous if previous is not None else -1}
    )
    conn.rollback()
    return seconds


def run_size(size: int, work: Path, out: Path, points: list[dict], sessions: int | None = None) -> None:
    recorded = {
        p["round"]
        for p in points
        if p.get("size") == size and p.get("bench") == "national" and p.get("sessions") == sessions
    }
    if set(ROUNDS) <= recorded:
        print(json.dumps({"size": size, "skipped": "both rounds are in " + str(out)}), flush=True)
        return
    # the first load starts as soon as the generator has closed the first round's files, while it
    # goes on with the second: such a first load shares the machine, so its point is marked and
    # left out of the model (a size's clean first load is kept from an earlier run)
    world, generating = start_generation(size, 2, work, name=f"gen-{size}-r2")
    name = f"dtsen_national_{size}" + (f"_s{sessions}" if sessions else "")
    url = None
    if "2026-Q1" in recorded:  # resume at the quarterly round if the first load is still there
        server = engine.database_url()
        from sqlalchemy.engine import make_url

        candidate_url = make_url(server).set(database=name).render_as_string(hide_password=False)
        try:
            with psycopg.connect(engine.libpq_conninfo(candidate_url)) as conn:
                status = conn.execute("SELECT status FROM ingest.round WHERE round_id = '2026-Q1'").fetchone()
            url = candidate_url if status and status[0] == "PUBLISHED" else None
        except psycopg.Error:
            url = None
        if url is None:
            recorded = set()
    publish_root = (
        work / f"publish-national-{size}" if not sessions else work / f"publish-national-{size}-s{sessions}"
    )
    if url is None:  # a fresh start: nothing of an earlier run may be taken for this one's
        url = fresh_database(name)
        for leftover in (publish_root, work / f"raw-national-{size}", work / f"outbox-national-{size}"):
            shutil.rmtree(leftover, ignore_errors=True)
    os.environ["DTSEN_DATABASE_URL"] = url
    os.environ["DTSEN_RAW_ROOT"] = str(work / f"raw-national-{size}")
    os.environ["DTSEN_OUTBOX"] = str(work / f"outbox-national-{size}")
    for round_id, kind in ROUNDS.items():
        if round_id in recorded:
            continue
        wait_for_round(world, round_id, generating)
        if kind == "quarterly":  # measured alone: the generator has finished
            finish_generation(generating)
            generating = None
        overlapped = generating is not None and generating.poll() is None
        ctx = RoundContext.create(round_id, landing_root=world / "landing", publish_root=publish_root)
        seconds: dict[str, float] = {}
        started = time.monotonic()
        summaries = run_round(ctx, seconds=seconds)
        notify_started = time.perf_counter()
        NOTIFY_PROGRAMS.run(ctx)
        seconds["notify_programs"] = time.perf_counter() - notify_started
        total = time.monotonic() - started
        audited = summaries["rank_and_audit"]
        stages = {stage: sum(seconds.get(s, 0.0) for s in steps) for stage, steps in STAGES.items()}
        per_submission = summaries["stage_and_validate"]
        point_split = {
            part: round(sum(x.get("seconds", {}).get(part, 0.0) for x in per_submission), 1)
            for part in ("stage", "validate")
        }
        stages["rank"] = audited["seconds"]["candidate"]
        stages["audit"] = audited["seconds"]["audit"]
        point = {
            "bench": "national",
            "size": size,
            "round": round_id,
            "kind": kind,
            "date": dt.date.today().isoformat(),
            "seconds_total": round(total, 1),
            "stages": {k: round(v, 1) for k, v in stages.items()},
            "steps": {k: round(v, 1) for k, v in seconds.items()},
            "ingest_validate_split": point_split,  # staging (COPY, checks) vs validation, summed
            "build": audited.get("build"),
            "audit_passed": audited["audit_passed"],
            "publish_files": summaries["publish"].get("file_seconds"),
            "peak_rss_mib": peak_rss_mib(),
        }
        if sessions:  # the candidate's writer sessions, and as many processes per parallel plan
            point["sessions"] = sessions
        if overlapped:
            point["overlapped_with_generation"] = True
        files = sorted((world / "landing" / round_id).rglob("*.csv"))
        copied, copy_seconds = raw_copy_rate(fresh_database("dtsen_national_rawcopy"), files)
        point["ingest_raw_copy"] = {"rows": copied, "seconds": round(copy_seconds, 2)}
        point["ingest_ratio"] = round(copy_seconds / stages["ingest_validate"], 4)
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            point |= round_size(conn, round_id)
            # where the merge's time went, statement by statement (its own summary): what bounds it
            point["merge_statements"] = conn.execute(
                "SELECT merge_summary->'step_seconds' FROM ingest.round WHERE round_id = %s", (round_id,)
            ).fetchone()[0]
            point["postgres"] = {
                name: conn.execute(f"SHOW {name}").fetchone()[0]  # noqa: S608 (constant names)
                for name in (
                    "server_version",
                    "shared_buffers",
                    "work_mem",
                    "maintenance_work_mem",
                    "max_wal_size",
                )
            }
            conn.commit()
            if sessions == 2:  # the ceiling two sessions have on this machine, beside what they did
                point["parallel_reference"] = parallel_reference(url)
            if kind == "quarterly":
                point["whole_rebuild_reference"] = whole_rebuild_seconds(conn, round_id)
                incremental = stages["rank"] + stages["audit"]
                whole = sum(point["whole_rebuild_reference"].values())
                point["candidate_audit_ratio"] = round(incremental / whole, 3) if whole else None
                floor = merge_floor_seconds(conn, round_id)
                point["merge_floor_seconds"] = round(floor, 1)
                point["merge_ratio"] = round(floor / stages["merge"], 3)
                copy_seconds = publication_reference(conn, audited["version"])
                point["publication_reference_copy_seconds"] = round(copy_seconds, 1)
                point["publication_ratio"] = round(copy_seconds / stages["publish"], 3)
        emit(point, out)


def _sizes(p: dict, stage: str) -> tuple[float, float]:
    if stage != "dukcapil":
        return p["persons"], p["input_rows"]
    # a first extract is new whole: every line is typed and validated (its changes are not listed)
    changed = p["extract_rows"] if p["kind"] == "first_load" and not p["changed"] else p["changed"]
    return p["extract_rows"], changed


def fit(points: list[dict]) -> dict[str, dict]:
    """Per stage: seconds = fixed + a * x1 + b * x2 (least squares, every term kept >= 0): x1, x2 are
    persons and input rows, or for the Dukcapil stage extract rows and changed lines."""
    models = {}
    for stage in MODEL_STAGES:
        measured = [p for p in points if stage in p.get("stages", {})]
        if not measured:
            continue
        a = np.array([(1.0, *_sizes(p, stage)) for p in measured], dtype=float)
        y = np.array([p["stages"][stage] for p in measured], dtype=float)
        coef = _nonnegative_lstsq(a, y)
        predicted = a @ coef
        names = (
            ("per_extract_row", "per_changed_line")
            if stage == "dukcapil"
            else ("per_person", "per_input_row")
        )
        models[stage] = {
            "fixed_seconds": float(coef[0]),
            names[0]: float(coef[1]),
            names[1]: float(coef[2]),
            "points": len(y),
            "worst_relative_error": float(np.max(np.abs(predicted - y) / np.maximum(y, 0.1))),
        }
    return models


def _nonnegative_lstsq(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0 (a negative cost per row is not a cost):
    scikit-learn's non-negative least squares, the fixed cost a column of `a` like the others."""
    return LinearRegression(positive=True, fit_intercept=False).fit(a, y).coef_


def extrapolate(models: dict[str, dict], points: list[dict], measured: dict | None = None) -> dict:
    anggota_share = _anggota_share_of_publication(points)
    result = {}
    for kind, size in NATIONAL.items():
        here, sixteen = {}, {}
        for stage, m in models.items():
            if stage == "dukcapil":
                seconds = (
                    m["per_extract_row"] * size["extract_rows"] + m["per_changed_line"] * size["changed"]
                )
            else:
                seconds = m["per_person"] * size["persons"] + m["per_input_row"] * size["input_rows"]
            seconds += m["fixed_seconds"]
            here[stage] = seconds
            speedup, _ = SIXTEEN_CORES[stage]
            if measured and stage in measured and stage in SESSION_STAGES:
                speedup = measured[stage]["sixteen_core_speedup"]  # from 1 and 2 sessions, not assumed
            if stage == "publish":  # measured with one stream per core here: the largest file's time
                speedup = 1.0 / max(anggota_share, 1e-3) if anggota_share else 1.0
            sixteen[stage] = seconds / speedup
        result[kind] = {
            "this_machine_hours": round(sum(here.values()) / 3600, 2),
            "sixteen_cores_hours": round(sum(sixteen.values()) / 3600, 2),
            "this_machine_stage_minutes": {k: round(v / 60, 1) for k, v in here.items()},
            "sixteen_cores_stage_minutes": {k: round(v / 60, 1) for k, v in sixteen.items()},
        }
    return result


def _anggota_share_of_publication(points: list[dict]) -> float | None:
    """The largest file's share of the publication's summed file time, at the largest size measured."""
    measured = [p for p in points if p.get("publish_files")]
    if not measured:
        return None
    files = max(measured, key=lambda p: p["persons"])["publish_files"]
    return max(files.values()) / sum(files.values())


# Stages also measured alone (each configuration alternated on the same starting state, the median of
# several runs; the same definitions: one session with serial plans against two sessions with one
# parallel worker each): where such a run has the size the whole rounds' share comes from, the share
# is taken from it, as whole rounds minutes apart see different machines on a shared host.
STAGE_ALONE = {"merge": Path(__file__).parent / "results" / "merge_stage.jsonl"}


def stage_alone_two_over_one(stage: str) -> dict[int, dict[str, float]]:
    """size -> round kind -> one serial session's median over two sessions', from the newest run of
    the stage alone at each size (bench/merge_stage.py); empty where the stage has none."""
    path = STAGE_ALONE.get(stage)
    if path is None or not path.exists():
        return {}
    newest: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        point = json.loads(line)
        newest[point["size"]] = point
    return {
        size: {
            kind: point[kind]["median_seconds"]["one_serial"] / point[kind]["median_seconds"]["two_sessions"]
            for kind in ("first_load", "quarterly")
        }
        for size, point in newest.items()
    }


def _amdahl_share(two_over_one: float) -> float:
    """The parallel share p that two workers' speedup s implies: s = 1 / (1 - p + p / 2)."""
    return min(1.0, max(0.0, 2 * (1 - 1 / two_over_one)))


def measured_speedups(points: list[dict]) -> dict[str, dict]:
    """Per stage, from the sizes measured with 1 and with 2 sessions (--sessions): the speedup of 2
    over 1 per size and round, the parallel share p of Amdahl's law it implies (s = 1 / (1 - p + p / 2)),
    averaged over the rounds of the largest size measured both ways (the nearest to national, and
    measured by one run of the code as it is), and the speedup that share gives on 16 cores. Where the
    stage was also measured alone at that size (STAGE_ALONE), the share comes from that run."""
    by_key = {(p["size"], p["round"], p.get("sessions")): p for p in points if p.get("bench") == "national"}
    speedups: dict[str, list] = {}
    for (size, round_id, sessions), two in by_key.items():
        one = by_key.get((size, round_id, 1))
        if sessions != 2 or one is None:
            continue
        for stage, seconds in two["stages"].items():
            if seconds > 0 and one["stages"].get(stage, 0) > 0:
                speedups.setdefault(stage, []).append((size, round_id, one["stages"][stage] / seconds))
    # what the machine itself gave two sessions in the same runs (parallel_reference): on a shared
    # host a stage's ratio cannot be read without it
    machine = {
        f"{size}/{round_id}": {
            "insert": two["parallel_reference"]["insert_speedup"],
            "cpu": two["parallel_reference"]["cpu_speedup"],
        }
        for (size, round_id, sessions), two in by_key.items()
        if sessions == 2 and two.get("parallel_reference")
    }
    result = {}
    for stage, measured in speedups.items():
        largest = max(size for size, _, _ in measured)
        shares = [_amdahl_share(s) for size, _, s in measured if size == largest]
        p = sum(shares) / len(shares)
        two_over_one = {f"{size}/{round_id}": round(s, 2) for size, round_id, s in measured}
        result[stage] = {
            "two_over_one": two_over_one,
            "machine_two_over_one": {k: machine[k] for k in two_over_one if k in machine},
            "parallel_share": round(p, 3),
            "share_from_size": largest,
        }
        alone = stage_alone_two_over_one(stage).get(largest)
        if alone:
            result[stage]["whole_rounds_parallel_share"] = round(p, 3)
            result[stage]["alone_two_over_one"] = {kind: round(s, 2) for kind, s in alone.items()}
            p = sum(_amdahl_share(s) for s in alone.values()) / len(alone)
            result[stage]["parallel_share"] = round(p, 3)
            result[stage]["share_from"] = str(STAGE_ALONE[stage].relative_to(Path(__file__).parent.parent))
        result[stage]["sixteen_core_speedup"] = round(1 / ((1 - p) + p / 16), 2)
    return result


def newest_per_round(points: list[dict]) -> list[dict]:
    """Of the one-session points (measured with one session, or before sessions were measured), the
    newest per size and round: the cost of the code as it was last measured at that size, not an
    average with the code it replaced (the file keeps every run, oldest first)."""
    newest: dict[tuple, dict] = {}
    for p in points:
        if p.get("sessions") in (None, 1):
            newest[(p["size"], p["round"])] = p
    return list(newest.values())


def report(points: list[dict], out: Path | None, sizes: list[int] | None = None) -> None:
    national = [
        p
        for p in points
        if p.get("bench") == "national"
        and not p.get("overlapped_with_generation")
        and (not sizes or p["size"] in sizes)
    ]
    one_session = newest_per_round(national)
    models = fit(one_session)
    speedups = measured_speedups(national)
    result = {
        "bench": "national_model",
        "points": [(p["size"], p["kind"], p["persons"], p["input_rows"]) for p in one_session],
        "model": models,
        "measured_speedups": speedups,
        "national": extrapolate(models, one_session, speedups),
        "national_sizes": NATIONAL,
        "sixteen_core_assumptions": {k: v[1] for k, v in SIXTEEN_CORES.items()},
        "fitted_sizes": sorted({p["size"] for p in one_session}),
    }
    emit(result, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/national.jsonl"))
    parser.add_argument("--fit-only", action="store_true", help="refit and print from the points in --out")
    parser.add_argument(
        "--fit-sizes",
        type=int,
        nargs="+",
        help="fit the model on these sizes' points only (default: every size in --out); a size whose "
        "newest points measured code since replaced would otherwise speak for it",
    )
    parser.add_argument(
        "--sessions",
        type=int,
        nargs="+",
        help="measure each size with each of these session counts: the candidate's writer sessions "
        "(DTSEN_WRITE_SESSIONS) and the processes a parallel plan may use (max_parallel_workers_per_gather "
        "= sessions - 1); the model then takes each stage's 16-core speedup from 1 and 2",
    )
    args = parser.parse_args()
    if not args.fit_only:
        for size in args.sizes:
            for sessions in args.sessions or [None]:
                if sessions:
                    os.environ["DTSEN_WRITE_SESSIONS"] = str(sessions)
                    os.environ["PGOPTIONS"] = f"-c max_parallel_workers_per_gather={sessions - 1}"
                run_size(size, args.work, args.out, done_points(args.out), sessions)
    report(done_points(args.out), args.out, args.fit_sizes)


if __name__ == "__main__":
    main()
