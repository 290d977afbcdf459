"""Run Great Expectations suites against views in the warehouse (validation and version audit).

Each batch is a view created for the run and dropped after it: GE's table assets read a view's
columns from the catalog, where a query asset would run the whole query and buffer every row to
learn them (1.9 GB for a 5M-row file). GE evaluates the expectations as SQL inside PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from dtsen.warehouse import engine


@contextmanager
def _views(schema: str, views: dict[str, str]) -> Iterator[None]:
    with psycopg.connect(engine.libpq_conninfo(engine.database_url()), autocommit=True) as admin:
        try:
            for name, query in views.items():
                admin.execute(
                    sql.SQL("CREATE OR REPLACE VIEW {} AS {}").format(
                        sql.Identifier(schema, name), sql.SQL(query)
                    )
                )
            yield
        finally:
            for name in views:
                admin.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(schema, name)))


def validate_views(
    schema: str, batches: dict[str, tuple[str, dict]], parameters: dict | None = None
) -> dict[str, object]:
    """Validate each view `name -> (SELECT ..., suite json)` in `schema`; GE results by name.

    `parameters` fill the suites' {"$PARAMETER": ...} placeholders. An expectation that raised is
    a defect of the suite, not of the data: it stops the run loudly.
    """
    import great_expectations as gx  # heavy import: only where a suite runs

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    # GE finds a view by its bare name: the schema first on the search path
    url = make_url(engine.database_url()).update_query_dict({"options": f"-csearch_path={schema},public"})
    source = context.data_sources.add_postgres(
        "warehouse", connection_string=url.render_as_string(hide_password=False)
    )
    results = {}
    with _views(schema, {name: query for name, (query, _) in batches.items()}):
        for name, (_, suite_json) in batches.items():
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
