"""Benchmark: one round of many pemda submissions through the real Airflow scheduler (LocalExecutor),
with the per-submission tasks running 1 and then 2 (or more) at a time.

    .venv/bin/python bench/parallel_round.py --persons 500000 --regencies 500 --parallelism 1 2

For each parallelism: a fresh warehouse and a fresh Airflow metadata database on the warehouse's
server (PostgreSQL: SQLite cannot take concurrent task writers), an api-server, a dag-processor and a
scheduler with LocalExecutor and `parallelism` / `max_active_tasks` set, then `dtsen_update_round`
triggered for round 1 of a generated world with one submission per regency. Measured from Airflow's
own task instances: the span of the mapped `stage_and_validate` tasks (first start to last end), the
sum of their durations, and the whole run. Every process and port is local (127.0.0.1); the run is
bounded by --timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from common import emit, fresh_database, generated_world
from sqlalchemy.engine import make_url

from dtsen.warehouse import engine
from dtsen_dev.local_airflow import MailSink, airflow_env, free_port

ROUND = "2026-Q1"
DAG = "dtsen_update_round"


def airflow_metadata_url(server: str, name: str) -> tuple[str, str]:
    """A fresh empty database for Airflow's metadata: (SQLAlchemy URL for Airflow, libpq URL)."""
    admin = engine.libpq_conninfo(
        make_url(server).set(database="postgres").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name)
    return (
        url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False),
        engine.libpq_conninfo(url.render_as_string(hide_password=False)),
    )


def run_once(parallelism: int, landing: Path, work: Path, timeout: float) -> dict:
    server = engine.database_url()
    warehouse = fresh_database(f"dtsen_bench_parallel_{parallelism}", server)
    airflow_url, metadata = airflow_metadata_url(server, f"airflow_bench_parallel_{parallelism}")
    home = Path(tempfile.mkdtemp(prefix=f"airflow-p{parallelism}-", dir=work))
    port, smtp_port = free_port(), free_port()
    env = (
        os.environ
        | airflow_env(smtp_port, home=home)
        | {
            "DTSEN_DATABASE_URL": warehouse,
            "DTSEN_LANDING_ROOT": str(landing),
            "DTSEN_PUBLISH_ROOT": str(home / "publish"),
            "DTSEN_RAW_ROOT": str(home / "raw"),
            "DTSEN_OUTBOX": str(home / "outbox"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": airflow_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "bench-only-secret-on-127.0.0.1",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    run_id = f"bench_parallelism_{parallelism}"
    sink = MailSink(port=smtp_port).__enter__()  # the regions' and data ops' emails go somewhere real
    logs = home / "logs"
    logs.mkdir(exist_ok=True)
    processes = [
        subprocess.Popen(
            [*airflow, component],
            env=env,
            stdout=open(logs / f"{component}.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        for component in ("api-server", "dag-processor", "scheduler")
    ]
    try:
        with psycopg.connect(metadata, autocommit=True) as meta:
            deadline = time.monotonic() + 300
            while not meta.execute("SELECT 1 FROM dag WHERE dag_id = %s", (DAG,)).fetchone():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{DAG} was not parsed; see {logs}")
                time.sleep(2)
            subprocess.run([*airflow, "dags", "unpause", DAG], env=env, check=True, capture_output=True)
            started = time.monotonic()
            subprocess.run(
                [
                    *airflow,
                    "dags",
                    "trigger",
                    DAG,
                    "--run-id",
                    run_id,
                    "--conf",
                    json.dumps({"round_id": ROUND}),
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            state = None
            while state not in ("success", "failed"):
                if time.monotonic() - started > timeout:
                    raise RuntimeError(f"the run did not finish within {timeout} s; see {logs}")
                time.sleep(5)
                # unpausing also schedules the latest cron interval's run: only ours is measured
                found = meta.execute(
                    "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", (DAG, run_id)
                ).fetchone()
                state = found[0] if found else None
            whole = time.monotonic() - started
            span, total, tasks, failed = meta.execute(
                "SELECT extract(epoch FROM max(end_date) - min(start_date)), sum(duration), count(*), "
                "count(*) FILTER (WHERE state <> 'success') FROM task_instance "
                "WHERE dag_id = %s AND run_id = %s AND task_id = 'stage_and_validate'",
                (DAG, run_id),
            ).fetchone()
            tasks_by_state = dict(
                meta.execute(
                    "SELECT task_id || coalesce('[' || nullif(map_index, -1) || ']', ''), state FROM task_instance "
                    "WHERE dag_id = %s AND run_id = %s AND task_id <> 'stage_and_validate'",
                    (DAG, run_id),
                ).fetchall()
            )
    finally:
        sink.__exit__(None, None, None)
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
        rows = conn.execute(
            "SELECT coalesce(sum(rows_received), 0) FROM ingest.submission_file f "
            "JOIN ingest.submission s USING (submission_pk)"
        ).fetchone()[0]
    return {
        "parallelism": parallelism,
        "run_state": state,
        "submission_tasks": tasks,
        "submission_tasks_not_successful": failed,
        "submission_rows": int(rows),
        "submissions_span_seconds": round(float(span), 1),
        "submissions_task_seconds_summed": round(float(total), 1),
        "submission_task_seconds_mean": round(float(total) / max(tasks, 1), 2),
        "whole_run_seconds": round(whole, 1),
        "other_tasks": tasks_by_state,
        "emails_received": len(sink.messages),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=500_000)
    parser.add_argument("--regencies", type=int, default=500)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, help="append each result as a JSON line here")
    args = parser.parse_args()
    landing = (
        generated_world(
            args.persons, 1, args.work, name=f"gen-{args.persons}-k{args.regencies}", regencies=args.regencies
        )
        / "landing"
    )
    results = []
    for parallelism in args.parallelism:
        result = run_once(parallelism, landing, args.work, args.timeout)
        result |= {"persons": args.persons, "regencies": args.regencies}
        results.append(result)
        emit(result, args.out)
    if len(results) > 1:
        base = results[0]["submissions_span_seconds"]
        for r in results[1:]:
            print(
                json.dumps(
                    {
                        "parallelism": r["parallelism"],
                        "speedup_over_first": round(base / r["submissions_span_seconds"], 2),
                    }
                )
            )


if __name__ == "__main__":
    main()
