"""Named SQL statements kept as reviewed .sql files under sql/, and the one way they are run.

A file holds blocks introduced by `-- name: <statement>` lines, returned in file order, so a file reads
top to bottom as the steps it performs. A block may say `-- planner: probe` (see PLANNER_PROFILES):
run with that profile active, it gets those planner settings for itself only.

Files are Jinja templates rendered once with the contract's attribute lists (`family_attributes`,
`member_attributes`: each with `.name` and `.sql_type`), so adding an attribute to the contract does
not mean editing every SQL list; structure only, never values. Values are always bound parameters in
psycopg's %(name)s style (a literal % is written %%).
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from dtsen.paths import SQL_DIR
from dtsen.progress import Progress

NAME_RE = re.compile(r"^-- name: ([a-z0-9_]+)\s*$", re.M)
PLANNER_RE = re.compile(r"^-- planner: ([a-z_]+)\s*$", re.M)
# Profiles a caller may switch on for the statements that name them. "probe": look the round's keys up
# in the registry by index instead of hashing the registry (a round small against the registry).
# "parallel": share a pass whose cost is per-row expressions (parsing, hashing) among parallel workers;
# the planner weighs only the scan when it decides, and keeps such a pass in one process. "sift": a
# pass comparing many values of every row and keeping few rows; the planner cannot see how few, so it
# prices sending every row to the leader and keeps the pass in one process unless that is free.
PLANNER_PROFILES: dict[str, dict[str, str]] = {
    "probe": {"enable_hashjoin": "off", "enable_mergejoin": "off"},
    "parallel": {"parallel_setup_cost": "0", "parallel_tuple_cost": "0.01"},
    "sift": {"parallel_setup_cost": "0", "parallel_tuple_cost": "0"},
}
# Below this share of the table it looks keys up in, a statement probes by index; above, it scans.
PROBE_FRACTION = 0.2


def probe_when_small(rows: float, table_rows: float) -> frozenset[str]:
    """The profiles for `rows` keys looked up in a table of `table_rows`: "probe" when they are few."""
    return frozenset({"probe"}) if table_rows > 0 and rows < PROBE_FRACTION * table_rows else frozenset()


@dataclass(frozen=True)
class Statement:
    name: str
    text: str
    planner: str | None = None  # a PLANNER_PROFILES key


def template_context() -> dict:
    from dtsen.domain.codes import FAMILY_ATTRIBUTE_FIELDS, MEMBER_ATTRIBUTE_FIELDS

    return {"family_attributes": FAMILY_ATTRIBUTE_FIELDS, "member_attributes": MEMBER_ATTRIBUTE_FIELDS}


def render(relative_path: str, **fragments: str) -> str:
    """The file's text with the contract's lists (and any SQL `fragments` the caller names) filled in."""
    import jinja2

    # a file may import another's macros ({% from "merge/accepted.sql" import accepted %}), by its path under sql/
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(SQL_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    return environment.get_template(relative_path).render(**template_context(), **fragments)


@functools.cache
def _parsed(relative_path: str, fragments: tuple[tuple[str, str], ...]) -> tuple[Statement, ...]:
    parts = NAME_RE.split(render(relative_path, **dict(fragments)))
    named: dict[str, Statement] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in named:
            raise ValueError(f"{relative_path}: statement {name} defined twice")
        lines = body.strip().splitlines()
        while lines and lines[-1].lstrip().startswith("--"):
            lines.pop()  # a comment before the next block introduces that block, not this one
        text = "\n".join(lines).strip().rstrip(";")
        planner = PLANNER_RE.search(text)
        if planner and planner.group(1) not in PLANNER_PROFILES:
            raise ValueError(f"{relative_path}: {name} names an unknown planner profile {planner.group(1)}")
        named[name] = Statement(name, text, planner.group(1) if planner else None)
    if not named:
        raise ValueError(f"{relative_path}: no '-- name:' blocks")
    return tuple(named.values())


def load(relative_path: str, **fragments: str) -> tuple[Statement, ...]:
    return _parsed(relative_path, tuple(sorted(fragments.items())))


def statements(relative_path: str, **fragments: str) -> dict[str, str]:
    """name -> SQL text, in file order."""
    return {s.name: s.text for s in load(relative_path, **fragments)}


@contextlib.contextmanager
def planner(conn: psycopg.Connection, profile: str | None) -> Iterator[None]:
    """Run what the block executes with planner profile `profile` (a PLANNER_PROFILES key; None: as
    configured), in the caller's transaction, and restore the settings after."""
    settings = PLANNER_PROFILES[profile] if profile else {}
    for key, value in settings.items():
        conn.execute(f"SET LOCAL {key} = {value}")  # constants of this module
    yield
    for key in settings:
        conn.execute(f"SET LOCAL {key} = DEFAULT")


def _planner(conn: psycopg.Connection, statement: Statement, profiles: frozenset[str]):
    return planner(conn, statement.planner if statement.planner in profiles else None)


def _execute(conn: psycopg.Connection, statement: Statement, params: dict) -> psycopg.Cursor:
    try:
        return conn.execute(statement.text, params)
    except psycopg.Error as exc:
        exc.statement = statement.name  # type: ignore[attr-defined]
        raise


def run(
    conn: psycopg.Connection,
    relative_path: str,
    params: dict | None = None,
    *,
    profiles: frozenset[str] = frozenset(),
    timings: dict[str, float] | None = None,
    stage: str | None = None,
    expected: dict[str, float] | None = None,
    progress: Progress | None = None,
    fragments: dict[str, str] | None = None,
    part: str = "{name}",
) -> dict[str, int]:
    """Run every statement of the file in order, in the caller's transaction, always binding `params`;
    a statement whose planner profile is in `profiles` runs with it. Returns rows per statement. A
    failing statement's exception carries `.statement` (its name). With `stage`, each statement logs
    its progress as it finishes (dtsen.progress; `expected`: seconds each took the last time); or
    with `progress`, a stage the caller shares among several files or sessions, each statement as the
    part `part` names (e.g. "{name} share 1/2", also its key in `timings`). `fragments`: as `render`."""
    counts: dict[str, int] = {}
    listed = load(relative_path, **(fragments or {}))
    if progress is None and stage:
        progress = Progress(stage, [part.format(name=s.name) for s in listed], expected)
    for statement in listed:
        started = time.perf_counter()
        with _planner(conn, statement, profiles):
            counts[statement.name] = _execute(conn, statement, params or {}).rowcount
        seconds = time.perf_counter() - started
        name = part.format(name=statement.name)
        if timings is not None:
            timings[name] = seconds
        if progress is not None:
            progress.finished(name, counts[statement.name], seconds)
    return counts


def fetch(
    conn: psycopg.Connection,
    relative_path: str,
    params: dict | None = None,
    *,
    profiles: frozenset[str] = frozenset(),
) -> dict[str, list[tuple]]:
    """Each query of the file, run as `run` does; its rows by name."""
    rows: dict[str, list[tuple]] = {}
    for statement in load(relative_path):
        with _planner(conn, statement, profiles):
            rows[statement.name] = _execute(conn, statement, params or {}).fetchall()
    return rows


def copy_csv(conn: psycopg.Connection, query: str, params: dict, path: Path) -> int:
    """Stream `query`'s rows into the CSV file `path` (with a header), written atomically in bounded
    memory; returns the rows written. psycopg binds COPY parameters client-side: `query` must be our
    own text, from sql/."""
    from dtsen.storage import atomic_output

    lines = 0
    with conn.cursor() as cur, atomic_output(path) as out:
        with cur.copy(f"COPY ({query}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            for chunk in copy:
                out.write(chunk)
                lines += bytes(chunk).count(b"\n")
    return max(lines - 1, 0)  # the header line
