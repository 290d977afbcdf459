"""The audit's members and families batches, computed in shares by key (issue 27).

They are the batches that grow with the round (every person and family a first load holds). Each
share is one key range of the persons (nik) and of the families (no_kk), cut where the span tables'
histograms put equal shares of their rows. In one session (a dry run, or one configured), the audit's
own transaction computes them into temporary tables. In several, each session computes its share
into unlogged tables of schema scratch_audit (migration 0044) and commits them, so the audit's
transaction, which only reads what is committed from other sessions, can check their union; it
drops them before it commits, and the next audit drops any a crash left behind.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from dtsen import sqlfiles
from dtsen.gx import Computed
from dtsen.progress import Progress, timed
from dtsen.warehouse.sessions import each_in_a_session, key_cuts

SCRATCH = "scratch_audit"
SPLIT_ASSETS = ("members", "families")  # sql/publish/audit.sql: the batches taking low_/high_ ranges
# The key each split batch divides by, and the span table whose statistics say where to cut it.
SHARE_KEYS = {"nik": "anggota_span", "no_kk": "keluarga_span"}


def share_bounds(conn: psycopg.Connection, sessions: int) -> list[dict[str, int | None]]:
    """Each session's key ranges (low_<key> inclusive, high_<key> exclusive, None: open-ended): cut
    where the span table's histogram of the key (pg_stats, kept by ANALYZE) puts equal shares of its
    rows, at no cost; without statistics, evenly between the smallest and largest key."""
    shares: list[dict[str, int | None]] = [{} for _ in range(sessions)]
    for key, table in SHARE_KEYS.items():
        cuts = key_cuts(conn, f"publish.{table}", key, sessions)
        edges = [None, *cuts, None]
        for k, share in enumerate(shares):
            share |= {f"low_{key}": edges[k], f"high_{key}": edges[k + 1]}
    return shares


def probe_profile(conn: psycopg.Connection, version: int, previous: int | None) -> str | None:
    """ "probe" when the members the version opened are few against its spans (a quarterly round: the
    batches look their keys up by index instead of hashing whole span tables); None for a first
    load or a round touching most of the registry."""
    if previous is None:
        return None
    opened, spans = conn.execute(
        "SELECT (SELECT count(*) FROM publish.anggota_span WHERE valid_from > %s AND valid_from <= %s), "
        "(SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = 'publish.anggota_span'::regclass)",
        (previous, version),
    ).fetchone()
    return "probe" if sqlfiles.probe_when_small(opened, spans) else None


def compute_shares(
    conn: psycopg.Connection,
    connect: Callable[[], psycopg.Connection] | None,
    version: int,
    queries: list[dict[str, str]],
    profile: str | None,
    progress: Progress,
) -> dict[str, Computed]:
    """The split batches, each as the union of its shares' tables (`queries`: each share's batch
    queries). With `connect` and several shares, one session per share; else on `conn`. Each share
    reports its parts (`share_parts`) to `progress`."""
    sessions = len(queries) if connect is not None else 1
    if sessions == 1:
        tables = {a: f"pg_temp.audit_v{int(version)}_{a}_share" for a in SPLIT_ASSETS}
        rows = _compute(conn, queries[0], tables, profile, progress, 0, 1, temporary=True)
        return {a: Computed(f"SELECT * FROM {tables[a]}", rows[a]) for a in SPLIT_ASSETS}  # noqa: S608
    with connect() as other:  # an earlier audit's tables, left by a crash (the caller's lock keeps
        clear_scratch(other)  # out a live one), dropped and committed before the shares create theirs
    names = {
        a: [f"{SCRATCH}.v{int(version)}_{a}_{k}of{sessions}" for k in range(sessions)] for a in SPLIT_ASSETS
    }

    def one(worker: psycopg.Connection, k: int) -> dict[str, int]:
        tables = {a: names[a][k] for a in SPLIT_ASSETS}
        return _compute(worker, queries[k], tables, profile, progress, k, sessions, temporary=False)

    rows = each_in_a_session(connect, sessions, "audit", one)
    return {
        a: Computed(" UNION ALL ".join(f"SELECT * FROM {t}" for t in names[a]), sum(r[a] for r in rows))  # noqa: S608
        for a in SPLIT_ASSETS
    }


def share_parts(sessions: int) -> list[str]:
    """The progress parts of the shares: each split batch of each share, as it is computed."""
    return [_part(a, k, sessions) for k in range(sessions) for a in SPLIT_ASSETS]


def _part(asset: str, share: int, sessions: int) -> str:
    return f"{asset} share {share + 1}/{sessions} computed"


def _compute(
    conn: psycopg.Connection,
    queries: dict[str, str],
    tables: dict[str, str],
    profile: str | None,
    progress: Progress,
    share: int,
    sessions: int,
    temporary: bool,
) -> dict[str, int]:
    """Each split batch's query into its table, analysed; rows by batch. A progress line each (names
    and counts only)."""
    kind = "TEMP TABLE" if temporary else "UNLOGGED TABLE"
    rows = {}
    for asset in SPLIT_ASSETS:
        table = tables[asset]
        with timed(progress, _part(asset, share, sessions)) as part:
            with sqlfiles.planner(conn, profile):
                created = conn.execute(
                    f"CREATE {kind} {table} {'ON COMMIT DROP ' if temporary else ''}AS {queries[asset]}"
                )
            rows[asset] = part.rows = created.rowcount
            conn.execute(f"ANALYZE {table}")
    return rows


def clear_scratch(conn: psycopg.Connection) -> None:
    """Drop every table of scratch_audit (in `conn`'s transaction)."""
    names = [
        name
        for (name,) in conn.execute(
            "SELECT format('%%I.%%I', schemaname, tablename) FROM pg_tables WHERE schemaname = %s", (SCRATCH,)
        ).fetchall()
    ]
    if names:
        conn.execute(f"DROP TABLE {', '.join(names)}")  # names from the catalog, quoted by format()
