"""How fast each page of the data-ops cockpit answers on a large registry.

Serves the cockpit app (dtsen.cockpit.app) with uvicorn on this machine, against a warehouse that
already holds rounds and versions (by default the one bench/national.py left for `--size`), and
fetches every page over HTTP with a real client: the rounds overview, the newest round, one region's
trend, the versions list, the newest and the previous version (audit, drift per regency, files), the
difference between the two, and the same version as JSON. Airflow's authentication is replaced by a
no-op for the measurement (it is a token check, independent of the registry's size).

Target (issue 13): every page under a second on a 10M-person registry. Each page is fetched once to
warm the connection and templates, then `--repeat` times; the median and the slowest are kept.

    python bench/cockpit_pages.py --size 10000000
    python bench/cockpit_pages.py --database-url postgresql://.../dtsen_national_10000000
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg
import uvicorn
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from common import emit  # noqa: E402

from dtsen.warehouse import engine  # noqa: E402


def pages(conn: psycopg.Connection) -> dict[str, str]:
    newest_round = conn.execute(
        "SELECT round_id FROM ingest.round ORDER BY round_seq DESC LIMIT 1"
    ).fetchone()[0]
    region = conn.execute(
        "SELECT kode_wilayah FROM ingest.submission WHERE source = 'pemda' ORDER BY submission_pk LIMIT 1"
    ).fetchone()[0]
    versions = [
        v for (v,) in conn.execute("SELECT version FROM publish.version ORDER BY version DESC LIMIT 2")
    ]
    newest, previous = versions[0], versions[-1]
    return {
        "rounds overview": "/",
        f"round {newest_round}": f"/rounds/{newest_round}",
        f"region {region} trend": f"/regions/{region}",
        "versions": "/versions",
        f"version {newest}": f"/versions/{newest}",
        f"version {previous}": f"/versions/{previous}",
        f"compare {previous}..{newest}": f"/compare?a={previous}&b={newest}",
        f"version {newest} (JSON)": f"/api/versions/{newest}",
    }


def serve(port: int) -> uvicorn.Server:
    from dtsen.cockpit.app import create_app

    server = uvicorn.Server(
        uvicorn.Config(create_app(reader=lambda: None), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        time.sleep(0.1)
    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, help="use the database bench/national.py left for this size")
    parser.add_argument("--database-url", help="a warehouse with rounds and versions")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/cockpit_pages.jsonl"))
    args = parser.parse_args()
    if args.database_url:
        url = args.database_url
    elif args.size:
        url = (
            make_url(engine.database_url())
            .set(database=f"dtsen_national_{args.size}")
            .render_as_string(hide_password=False)
        )
    else:
        parser.error("give --size or --database-url")
    os.environ["DTSEN_DATABASE_URL"] = url
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        wanted = pages(conn)
        persons = conn.execute(
            "SELECT (counts ->> 'individuals')::bigint FROM publish.version ORDER BY version DESC LIMIT 1"
        ).fetchone()[0]
    from dtsen_dev.local_airflow import free_port

    port = free_port()
    server = serve(port)
    results = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for name, path in wanted.items():
                client.get(path).raise_for_status()  # warm: connection pool, templates, plans
                times = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    answer = client.get(path)
                    times.append(time.perf_counter() - started)
                    answer.raise_for_status()
                results[name] = {
                    "path": path,
                    "median_seconds": round(statistics.median(times), 3),
                    "max_seconds": round(max(times), 3),
                    "bytes": len(answer.content),
                }
    finally:
        server.should_exit = True
    emit(
        {
            "bench": "cockpit_pages",
            "registry_individuals": persons,
            "database": engine.describe_target(url),
            "repeat": args.repeat,
            "target_seconds": 1.0,
            "pages": results,
            "all_under_target": all(r["max_seconds"] < 1.0 for r in results.values()),
        },
        args.out,
    )
    print(json.dumps({name: r["median_seconds"] for name, r in results.items()}, indent=1))


if __name__ == "__main__":
    main()
