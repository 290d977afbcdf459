"""Same answers with several sessions (issue 27, item 3): the registry, every published file and
`dtsen explain` of a world run with 1 and with 2 write sessions, compared.

    .venv/bin/python bench/national.py --sizes 1000000 --sessions 1 2 --out /tmp/n1m.jsonl
    .venv/bin/python bench/sessions_identical.py --size 1000000

`bench/national.py --sessions 1 2` leaves each session count's warehouse (`dtsen_national_<size>_s1`,
`_s2`) and publish root behind; this reads both, after the fact:
  - every table of the registry and every span, count and drift table of the published versions: its
    rows, and an order-independent digest of them (the sum of each row's md5, computed by the server,
    so nothing is held in Python), without the columns that record when something happened;
  - the versions' decisions: status, counts, programs, reference date, ranking inputs and the audit's
    outcome (not its timings);
  - every published file but the manifests (which carry the time they were written), by sha256;
  - `dtsen explain` of members picked by a hash of their NIK, in both warehouses.
Only equal/different and counts are printed and kept: no NIK, no name. Exits 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import psycopg
from common import emit, header
from sqlalchemy.engine import make_url

from dtsen.programs import load_programs
from dtsen.publish.explain import explain
from dtsen.rank.model import load_model
from dtsen.warehouse import engine

TABLES = (
    "registry.family",
    "registry.person",
    "registry.membership",
    "registry.field_change",
    "registry.bps_measurement",
    "registry.round_touched",
    "publish.keluarga_span",
    "publish.anggota_span",
    "publish.recipient_span",
    "publish.implausible_span",
    "publish.recipient_count",
    "publish.implausible_count",
    "publish.recipient_drift",
)
# what a version decided, without when (created_at, published_at) or how long it took (build)
VERSION_DECISIONS = (
    "SELECT version, round_seq, status, previous_version, counts, programs, reference_date, rank_inputs, "
    "audit->'success', audit->'checks', audit->'drift_flagged', audit->'warnings' FROM publish.version "
    "ORDER BY version"
)
WALL_CLOCK = ("timestamp with time zone", "timestamp without time zone")
EXPLAINED = 40


def table_digest(conn: psycopg.Connection, table: str) -> tuple[int, str]:
    """Rows and an order-independent digest of a table's rows, the wall-clock columns left out."""
    schema, name = table.split(".")
    columns = [
        c
        for c, kind in conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s ORDER BY ordinal_position",
            (schema, name),
        ).fetchall()
        if kind not in WALL_CLOCK
    ]
    row = ", ".join(f'"{c}"' for c in columns)
    rows, digest = conn.execute(
        # each row's md5 as two 64-bit halves, summed exactly (numeric): equal multisets, equal sums
        f"SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint::numeric), 0)::text "  # noqa: S608 (catalogue names)
        f"|| ':' || coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint::numeric), 0)::text "
        f"FROM (SELECT md5(ROW({row})::text) AS h FROM {table}) t"
    ).fetchone()
    return rows, digest


def file_digests(root: Path) -> dict[str, str]:
    """Every published file but the manifests, by sha256, read in chunks."""
    digests = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "manifest.json":
            sha = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    sha.update(chunk)
            digests[str(path.relative_to(root))] = sha.hexdigest()
    return digests


def explained(conn: psycopg.Connection, niks: list[int]) -> list[str]:
    model, programs = load_model(), load_programs()
    return [repr(explain(conn, nik, None, model, programs)) for nik in niks]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/dtsen-bench"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/sessions_identical.jsonl"))
    args = parser.parse_args()
    server = engine.database_url()
    urls = {
        s: engine.libpq_conninfo(
            make_url(server)
            .set(database=f"dtsen_national_{args.size}_s{s}")
            .render_as_string(hide_password=False)
        )
        for s in (1, 2)
    }
    result = header("sessions_identical", 27) | {"size": args.size, "tables": {}}
    differing: list[str] = []
    with psycopg.connect(urls[1]) as one, psycopg.connect(urls[2]) as two:
        for table in TABLES:
            (rows, a), (rows_two, b) = table_digest(one, table), table_digest(two, table)
            result["tables"][table] = {"rows": rows, "equal": (rows, a) == (rows_two, b)}
            if (rows, a) != (rows_two, b):
                differing.append(table)
        versions = one.execute(VERSION_DECISIONS).fetchall()
        result["versions"] = len(versions)
        if versions != two.execute(VERSION_DECISIONS).fetchall():
            differing.append("publish.version decisions")
        niks = [
            n
            for (n,) in one.execute(
                "SELECT nik FROM publish.anggota_span WHERE valid_to IS NULL ORDER BY hashint8(nik), nik LIMIT %s",
                (EXPLAINED,),
            ).fetchall()
        ]
        result["explained"] = len(niks)
        if explained(one, niks) != explained(two, niks):
            differing.append("dtsen explain")
    files = {s: file_digests(args.work / f"publish-national-{args.size}-s{s}") for s in (1, 2)}
    result["files"] = len(files[1])
    if not files[1] or files[1] != files[2]:
        differing.append("published files")
    result["differing"] = differing
    result["identical"] = not differing
    emit(result, args.out)
    sys.exit(0 if not differing else 1)


if __name__ == "__main__":
    main()
