"""Run Great Expectations suites against views, inside the calling step's own transaction.

GE evaluates the expectations as SQL inside PostgreSQL, through SQLAlchemy. It is lent the step's
connection (a SQLAlchemy engine whose only connection is that one, with commit, rollback and close
made no-ops while it is lent), so it sees what the step wrote but has not committed: a step stages
and validates a file, or builds and audits a candidate, in one transaction, and a dry run can audit a
candidate that is rolled back afterwards. Each batch is a temporary view of that session: GE's table
assets read a view's columns from the catalog, where a query asset would run the whole query and
buffer every row to learn them (1.9 GB for a 5M-row file).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

from dtsen.progress import Progress, timed

# Names the dialect only: the engine's one connection is the lent one (its `creator`).
LENT_URL = "postgresql+psycopg://dtsen@lent-connection/dtsen"


@contextmanager
def lent_to_sqlalchemy(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """`conn` with commit, rollback and close disabled, so a library cannot end the caller's transaction."""
    noop = lambda: None  # noqa: E731
    conn.commit = conn.rollback = conn.close = noop  # type: ignore[method-assign]
    try:
        yield conn
    finally:
        del conn.commit, conn.rollback, conn.close


@dataclass(frozen=True)
class Computed:
    """A batch whose rows other sessions have already computed into tables: `query` reads them
    (cheaply: a union of whole tables), `rows` says how many there are."""

    query: str
    rows: int


@contextmanager
def _temporary_tables(
    conn: psycopg.Connection, batches: dict[str, str | Computed], progress: Progress | None = None
) -> Iterator[dict[str, int]]:
    """Each batch's rows computed once into a temporary table: GE reads a batch several times (a
    probe, the row count, one query per metric bundle), and a view would run its query each time.
    A batch computed elsewhere (`Computed`) is a temporary view of its tables instead. Yields the
    rows of each."""
    rows: dict[str, int] = {}
    try:
        for name, query in batches.items():
            if isinstance(query, Computed):
                conn.execute(
                    sql.SQL("CREATE TEMP VIEW {} AS {}").format(sql.Identifier(name), sql.SQL(query.query))
                )
                rows[name] = query.rows
                continue
            with timed(progress, f"{name} computed") as part:
                created = conn.execute(
                    sql.SQL("CREATE TEMP TABLE {} AS {}").format(sql.Identifier(name), sql.SQL(query))
                )
                rows[name] = part.rows = created.rowcount
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        yield rows
    finally:
        if not conn.closed and conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            for name, query in batches.items():
                kind = "VIEW" if isinstance(query, Computed) else "TABLE"
                conn.execute(sql.SQL(f"DROP {kind} IF EXISTS {{}}").format(sql.Identifier(name)))


def progress_parts(batches: dict[str, tuple[str | Computed, dict]]) -> list[str]:
    """The parts validate_views reports: each batch it computes, then each batch it checks."""
    return [f"{n} computed" for n, (q, _) in batches.items() if not isinstance(q, Computed)] + [
        f"{n} checked" for n in batches
    ]


def validate_views(
    conn: psycopg.Connection,
    batches: dict[str, tuple[str | Computed, dict]],
    parameters: dict | None = None,
    stage: str | Progress | None = None,
) -> dict[str, object]:
    """Validate each batch `name -> (SELECT ... or Computed, suite json)` on `conn`; GE results by name.

    `parameters` fill the suites' {"$PARAMETER": ...} placeholders. An expectation that raised is
    a defect of the suite, not of the data: it stops the run loudly. With `stage`, each batch logs
    a progress line when computed and when checked (dtsen.progress); a `Progress` given as the stage
    goes on counting a caller's parts (it must name `progress_parts(batches)` among them).
    """
    import great_expectations as gx  # heavy import: only where a suite runs
    from sqlalchemy.pool import StaticPool

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    results = {}
    progress = Progress(stage, progress_parts(batches)) if isinstance(stage, str) else stage
    with (
        lent_to_sqlalchemy(conn) as lent,
        _temporary_tables(conn, {n: q for n, (q, _) in batches.items()}, progress) as rows,
    ):
        source = context.data_sources.add_postgres(
            "warehouse",
            connection_string=LENT_URL,
            kwargs={"creator": lambda: lent, "poolclass": StaticPool, "pool_reset_on_return": None},
        )
        for name, (_, suite_json) in batches.items():
            with timed(progress, f"{name} checked") as part:
                asset = source.add_table_asset(name, table_name=name)
                definition = asset.add_batch_definition_whole_table("whole")
                suite = context.suites.add(gx.ExpectationSuite(**suite_json))
                validation = context.validation_definitions.add(
                    gx.ValidationDefinition(data=definition, suite=suite, name=f"validate_{name}")
                )
                result = validation.run(
                    expectation_parameters=parameters or None,
                    result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
                )
                for item in result.results:
                    if item.exception_info and item.exception_info.get("raised_exception"):
                        raise RuntimeError(
                            f"expectation {item.expectation_config.meta.get('rule')} on {name} failed to run: "
                            f"{item.exception_info.get('exception_message')}"
                        )
                results[name] = result
                part.rows = rows[name]
    return results


def observed_value(item: object) -> object:
    """What an expectation result reports: its failing-row count, else its observed value."""
    result = item.result or {}
    if "unexpected_count" in result:
        return result["unexpected_count"]
    return result.get("observed_value")


def failed_count(item: object) -> int:
    """How many rows (or the observed value) an expectation result reports as failing."""
    return int(observed_value(item) or 0)
