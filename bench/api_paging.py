"""Program teams paging through a large recipient list at once, through the registry API.

Starts `dtsen api` on 127.0.0.1 against a warehouse with a published version (by default the one
bench/national.py left for `--size`), creates a client for `--program`, and lets `--clients`
concurrent HTTP clients (threads, one connection each) page through the list for `--seconds`, each
from its own starting page, 1,000 records a page. Reports pages per second, records per second, the
p50 / p99 latency of a page, errors, and whether the disclosure log kept up (one log row per page
that carried records, written before the page left).

Targets (issue 14): zero errors, p99 under 500 ms, no response without its log row.

    python bench/api_paging.py --size 10000000
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from common import emit  # noqa: E402

from dtsen.warehouse import engine  # noqa: E402
from dtsen.warehouse.migrate import migrate  # noqa: E402
from dtsen_dev.browser import wait_http  # noqa: E402
from dtsen_dev.local_airflow import free_port  # noqa: E402

NOW = "2026-12-03T10:00:00+07:00"


def envelope(program: str, page: int, size: int) -> dict:
    return {
        "header": {
            "version": "1.0.0",
            "message_id": f"bench-{page}",
            "message_ts": NOW,
            "action": "search",
            "sender_id": "bench",
            "total_count": 1,
        },
        "message": {
            "transaction_id": f"bench-{page}",
            "search_request": [
                {
                    "reference_id": str(page),
                    "timestamp": NOW,
                    "search_criteria": {
                        "query_type": "predicate",
                        "query": [
                            {
                                "seq_num": 1,
                                "expression1": {
                                    "attribute_name": "program",
                                    "operator": "eq",
                                    "attribute_value": program,
                                },
                            }
                        ],
                        "pagination": {"page_size": size, "page_number": page},
                    },
                }
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, help="use the database bench/national.py left for this size")
    parser.add_argument("--database-url")
    parser.add_argument("--program", default="pbi_jk")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="API server processes (one per core here)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/api_paging.jsonl"))
    args = parser.parse_args()
    url = args.database_url or make_url(engine.database_url()).set(
        database=f"dtsen_national_{args.size}"
    ).render_as_string(hide_password=False)
    env = os.environ | {"DTSEN_DATABASE_URL": url, "DTSEN_API_DISCLOSURE_KEY": "bench-disclosure-key"}
    os.environ.update(env)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        if conn.execute("SELECT to_regclass('api.client')").fetchone()[0] is None:
            migrate(conn)  # the API's tables, if the warehouse predates them (never beside a running round)
    client_id = f"bench-{int(time.time())}"
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "dtsen",
            "api-client",
            "create",
            "--id",
            client_id,
            "--name",
            "benchmark",
            "--programs",
            args.program,
            "--rate",
            "1000000",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    secret = next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("client_secret"))
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "dtsen", "api", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    errors: list[str] = []
    records = [0]
    lock = threading.Lock()
    try:
        wait_http(f"{base}/registry/versions", 60)
        token = httpx.post(
            f"{base}/oauth2/client/token",
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as probe:
            first = probe.post("/registry/sync/search", json=envelope(args.program, 1, args.page_size)).json()
        total = first["message"]["search_response"][0]["pagination"]["total_count"]
        pages = max(1, -(-total // args.page_size))
        started = time.monotonic()
        deadline = started + args.seconds

        def worker(seed: int) -> None:
            page = random.Random(seed).randint(1, pages)
            with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
                while time.monotonic() < deadline:
                    t0 = time.perf_counter()
                    try:
                        answer = http.post(
                            "/registry/sync/search", json=envelope(args.program, page, args.page_size)
                        )
                        elapsed = time.perf_counter() - t0
                        if answer.status_code != 200:
                            raise RuntimeError(f"HTTP {answer.status_code}")
                        got = len(answer.json()["message"]["search_response"][0]["data"]["reg_records"])
                        with lock:
                            latencies.append(elapsed)
                            records[0] += got
                    except Exception as exc:  # noqa: BLE001 (every failure is counted, none stops the run)
                        with lock:
                            errors.append(str(exc)[:200])
                    page = page % pages + 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        logged = conn.execute(
            "SELECT count(*), coalesce(sum(records), 0) FROM api.disclosure WHERE client_id = %s",
            (client_id,),
        ).fetchone()
    latencies.sort()
    result = {
        "bench": "api_paging",
        "database": engine.describe_target(url),
        "program": args.program,
        "recipients": total,
        "clients": args.clients,
        "server_workers": args.workers,
        "page_size": args.page_size,
        "seconds": round(wall, 1),
        "pages": len(latencies),
        "pages_per_second": round(len(latencies) / wall, 1),
        "records_per_second": round(records[0] / wall),
        "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 1) if latencies else None,
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "disclosure_rows": logged[0],
        "disclosed_records": int(logged[1]),
        "log_kept_up": logged[0] >= len(latencies) - 1 and int(logged[1]) >= records[0],  # +1: the probe page
        "targets": {"errors": 0, "p99_ms_under": 500},
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
