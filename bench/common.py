"""Helpers shared by the benchmarks: a fresh migrated database, a cached generated world."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from dtsen.warehouse import engine
from dtsen.warehouse.migrate import migrate


def fresh_database(name: str, server_url: str | None = None) -> str:
    """Drop and recreate database `name` on the warehouse server, migrated; returns its URL."""
    server = server_url or engine.database_url()
    admin = engine.libpq_conninfo(
        make_url(server).set(database="postgres").render_as_string(hide_password=False)
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        migrate(conn)
    return url


def generated_world(
    persons: int,
    rounds: int,
    work: Path,
    name: str | None = None,
    regencies: int | None = None,
    options: tuple[str, ...] = (),
) -> Path:
    """Generate (once; reused while its summary.json exists) a world with seed 7."""
    out, generating = start_generation(persons, rounds, work, name, regencies, options)
    finish_generation(generating)
    return out


def finish_generation(generating: subprocess.Popen | None) -> None:
    """Wait for the generator (if one runs) and fail when it failed."""
    if generating is not None and generating.wait() != 0:
        raise subprocess.CalledProcessError(generating.returncode, generating.args)


def start_generation(
    persons: int,
    rounds: int,
    work: Path,
    name: str | None = None,
    regencies: int | None = None,
    options: tuple[str, ...] = (),
) -> tuple[Path, subprocess.Popen | None]:
    """Start generating a world with seed 7 unless it is complete; returns its folder and the
    generator's process (None when the world was already there)."""
    out = work / (name or f"gen-{persons}-r{rounds}")
    if (out / "summary.json").exists():
        return out, None
    extra = [*(["--regencies", str(regencies)] if regencies else []), *options]
    print(json.dumps({"generating": str(out)}), flush=True)
    return out, subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dtsen_dev.generate",
            "--persons",
            str(persons),
            "--rounds",
            str(rounds),
            "--seed",
            "7",
            "--out",
            str(out),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
    )


def wait_for_round(world: Path, round_id: str, generating: subprocess.Popen | None) -> None:
    """Wait until the generator has closed every file of `round_id` (or has finished)."""
    while generating is not None and not (world / "rounds-done" / round_id).exists():
        if generating.poll() is not None:
            if generating.returncode != 0:
                raise subprocess.CalledProcessError(generating.returncode, generating.args)
            return
        time.sleep(5)


def machine() -> dict:
    """What the figures were measured on (kept with them in bench/results/)."""
    import os
    import platform

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return {"cpus": os.cpu_count(), "memory_gib": round(memory_gib), "platform": platform.platform()}


def header(bench: str, issue: int) -> dict:
    """What every kept result starts with: the bench, its issue, the date, the commit, the command."""
    import datetime as dt

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return {
        "bench": bench,
        "issue": issue,
        "date": dt.date.today().isoformat(),
        "commit": commit.stdout.strip(),
        "command": " ".join([f"bench/{Path(sys.argv[0]).name}", *sys.argv[1:]]),
    }


def emit(result: dict, out: Path | None) -> None:
    """Print one measurement (with the machine) and append it as a JSON line to `out` if given."""
    result = result | {"machine": machine()}
    print(json.dumps(result, indent=1), flush=True)
    if out:
        with out.open("a") as fh:
            fh.write(json.dumps(result) + "\n")


def reference_copy_seconds(
    conn: psycopg.Connection, files: dict[str, str], params: dict
) -> tuple[float, int]:
    started, size = time.perf_counter(), 0
    with open(os.devnull, "wb") as sink:
        for relative, query in files.items():
            p = params | ({"program": Path(relative).stem} if relative.startswith("programs/") else {})
            with conn.cursor().copy(
                psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(psycopg.sql.SQL(query)), p
            ) as copy:
                for chunk in copy:
                    size += len(chunk)
                    sink.write(chunk)
    return time.perf_counter() - started, size


def raw_copy_rate(url: str, files: list[Path]) -> tuple[int, float]:
    """Rows/s of COPY ... FORMAT csv into an unlogged table with one text column per field."""
    rows = 0
    started = time.monotonic()
    with psycopg.connect(engine.libpq_conninfo(url), autocommit=True) as conn:
        for i, path in enumerate(files):
            with open(path, "rb") as fh:
                ncols = fh.readline().count(b",") + 1
            cols = ", ".join(f"c{j} text" for j in range(ncols))
            conn.execute(f"CREATE UNLOGGED TABLE raw_{i} ({cols})")
            with conn.cursor() as cur, open(path, "rb") as fh:
                with cur.copy(f"COPY raw_{i} FROM STDIN (FORMAT csv, HEADER true)") as copy:
                    while chunk := fh.read(1 << 20):
                        copy.write(chunk)
                rows += cur.rowcount
    return rows, time.monotonic() - started


def database_name(name: str) -> str:
    """The database a bench's world runs its rounds in."""
    return f"dtsen_{name.replace('-', '_')}"


def world_rounds(world: Path) -> list[str]:
    """The rounds of a generated world, in order."""
    return sorted(p.name for p in (world / "landing").iterdir() if p.name != "reference")


def run_rounds(world: Path, work: Path, name: str, rounds: list[str] | None = None) -> list[dict]:
    """`rounds` of `world` (default: every one) through the round's own steps, in a database of its own
    (left in DTSEN_DATABASE_URL), fresh when they start with the world's first round: per round its
    seconds, version, audit and publication."""
    from dtsen.round import RoundContext, run_round

    rounds = rounds or world_rounds(world)
    publish_root = work / f"publish-{name}"
    if rounds[0] == world_rounds(world)[0]:
        os.environ["DTSEN_DATABASE_URL"] = fresh_database(database_name(name))
        for folder in ("raw", "outbox", "publish"):
            shutil.rmtree(work / f"{folder}-{name}", ignore_errors=True)
    os.environ["DTSEN_RAW_ROOT"] = str(work / f"raw-{name}")
    os.environ["DTSEN_OUTBOX"] = str(work / f"outbox-{name}")
    done = []
    for round_id in rounds:
        started = time.monotonic()
        summaries = run_round(
            RoundContext.create(round_id, landing_root=world / "landing", publish_root=publish_root)
        )
        audited = summaries["rank_and_audit"]
        done.append(
            {
                "round": round_id,
                "seconds": round(time.monotonic() - started, 1),
                "version": audited.get("version"),
                "audit_passed": audited.get("audit_passed"),
                "published": "skipped" not in summaries["publish"],
            }
        )
        print(json.dumps(done[-1], default=str), flush=True)
    return done


def in_sessions(url: str, statements: list[str]) -> float:
    """Seconds to run one statement per session, all at once (serial plans, each its own commit)."""
    import threading

    def one(statement: str) -> None:
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            conn.execute("SET max_parallel_workers_per_gather = 0")
            conn.execute(statement)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(s,)) for s in statements]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


CPU = "SELECT sum(hashint8(g)) FROM generate_series({}, {}) g"


def cpu_statements(sessions: int) -> list[str]:
    """Pure computation, a hash summed over 20M integers, split among `sessions` (1 or 2) statements."""
    halves = [(1, 20_000_000)] if sessions == 1 else [(1, 10_000_000), (10_000_001, 20_000_000)]
    return [CPU.format(*h) for h in halves]
