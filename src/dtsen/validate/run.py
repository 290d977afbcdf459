"""Validate staged files: every row rule of the file kind's suite in one pass over the file, Great
Expectations judging the outcome, and the row-level rejections written from the same pass.

The suites in expectations/ are where a rule is read and changed. A file is read once
(sql/validate/row_rules.sql): each rule's predicate (dtsen.validate.rules) is evaluated on every row
and the rows failing any rule are kept with one flag per rule. Great Expectations then validates the
flags, one expectation per authored rule carrying the rule's meta, as column-map expectations that it
bundles into one query; and the rejections are the flagged rows. A clean row has every flag false, so
leaving clean rows out of the flags changes no verdict and no count. Running the authored suite
directly (`run_authored_suite`, one query or more per rule) gives the same verdicts and counts: a
test checks it on every file kind.

Nothing personal leaves the warehouse: GE results are stored as counts per rule, and the rejection
rows stay in quality.rejection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from dtsen import sqlfiles
from dtsen.contract import FILE_SPECS, FileKind
from dtsen.gx import failed_count, validate_views
from dtsen.progress import Progress, timed
from dtsen.validate.rules import Rule, rules_for
from dtsen.validate.suites import load_suite

log = logging.getLogger(__name__)

ROW_RULES = "validate/row_rules.sql"
FLAGS_VIEW = "row_flags_judged"


@dataclass(frozen=True)
class Batch:
    """The staged rows of one file: a submission's file, or a Dukcapil snapshot."""

    kind: FileKind
    round_seq: int | None = None
    submission_pk: int | None = None
    snapshot_pk: int | None = None

    def query(self) -> str:
        """The batch's rows, with `_cutoff` and `_regency`; its keys are %(name)s parameters."""
        table = f"staging.{self.kind.value}"  # an enum's table name only
        # `_cutoff` and `_regency` are one value per batch, read once by an uncorrelated subquery: as
        # a join they made every rule reading them a join filter, and PostgreSQL then kept the one
        # pass over the rows in one process; this way it may give that pass parallel workers
        if self.kind is FileKind.DUKCAPIL_PENDUDUK:
            # only the lines that differed from the reference were staged (every line of the first
            # extract): an unchanged line is a row the reference holds already, checked when it came
            return (
                "SELECT s.*, (SELECT snap.snapshot_date FROM ingest.dukcapil_snapshot snap "  # noqa: S608
                "WHERE snap.snapshot_pk = %(snapshot_pk)s) AS _cutoff, NULL::text AS _regency "
                f"FROM {table} s WHERE s.snapshot_pk = %(snapshot_pk)s"
            )
        return (
            "SELECT s.*, (SELECT r.reference_date FROM ingest.submission sub JOIN ingest.round r "  # noqa: S608
            "ON r.round_seq = sub.round_seq WHERE sub.submission_pk = %(submission_pk)s) AS _cutoff, "
            "(SELECT sub.kode_wilayah FROM ingest.submission sub WHERE sub.submission_pk = %(submission_pk)s) "
            f"AS _regency FROM {table} s WHERE s.round_seq = %(round_seq)s AND s.submission_pk = %(submission_pk)s"
        )

    @property
    def params(self) -> dict[str, int]:
        if self.kind is FileKind.DUKCAPIL_PENDUDUK:
            return {"snapshot_pk": int(self.snapshot_pk)}
        return {"round_seq": int(self.round_seq), "submission_pk": int(self.submission_pk)}

    def sql(self) -> str:
        """The batch's query with its integer keys written in (GE's views take plain text)."""
        return self.query() % self.params

    @property
    def name(self) -> str:
        owner = (
            f"s{self.snapshot_pk}" if self.kind is FileKind.DUKCAPIL_PENDUDUK else f"sub{self.submission_pk}"
        )
        return f"{self.kind.value}_{owner}"


@dataclass
class RuleOutcome:
    rule_id: str
    reason_code: str
    field: str
    success: bool
    failed: int


@dataclass
class SuiteOutcome:
    suite_name: str
    success: bool
    evaluated: int
    failed: int
    rules: list[RuleOutcome]


def _outcome(suite_json: dict, result) -> SuiteOutcome:
    rules = []
    for item in result.results:
        meta = item.expectation_config.meta
        rules.append(
            RuleOutcome(
                meta["rule"], meta["reason_code"], meta["field"], bool(item.success), failed_count(item)
            )
        )
    evaluated = int(result.statistics.get("evaluated_expectations", len(rules)))
    return SuiteOutcome(
        suite_json["name"], bool(result.success), evaluated, sum(not r.success for r in rules), rules
    )


def _row_rule_statements(conn: psycopg.Connection, batch: Batch, rules: list[Rule]) -> dict[str, str]:
    def text(part: sql.Composable) -> str:
        return part.as_string(conn).replace("%", "%%")  # the statements bind %(name)s parameters

    predicates = [sql.SQL("({}) IS TRUE").format(r.predicate) for r in rules]
    return sqlfiles.statements(
        ROW_RULES,
        batch=batch.query(),
        key=FILE_SPECS[batch.kind].key,
        flags=", ".join(f"{text(p)} AS {r.flag}" for p, r in zip(predicates, rules, strict=True)),
        any_failed=" OR ".join(text(p) for p in predicates),
        flag_columns=", ".join(r.flag for r in rules),
        flag_values=", ".join(
            f"(f.{r.flag}, {sql.Literal(r.reason_code).as_string(conn)}, {sql.Literal(r.field).as_string(conn)})"
            for r in rules
        ),
    )


def flag_suite(suite_json: dict, rules: list[Rule]) -> dict:
    """The authored suite as expectations on the rule flags: each keeps its rule's meta."""
    expectations = []
    for expectation, rule in zip(suite_json["expectations"], rules, strict=True):
        expectations.append(
            {
                "type": "expect_column_values_to_be_in_set",
                "kwargs": {"column": rule.flag, "value_set": [False]},
                "meta": dict(expectation["meta"]),
                "description": expectation.get("description") or expectation["type"],
            }
        )
    return {
        "name": suite_json["name"],
        "expectations": expectations,
        "meta": dict(suite_json.get("meta", {})),
    }


def validate_batch(
    conn: psycopg.Connection, batch: Batch, file_name: str | None, stage: str | None = None
) -> tuple[SuiteOutcome, int]:
    """Validate one staged file in one pass: its suite outcome (by Great Expectations) and, for a
    submission's file (`file_name`), the row-level rejections written. Returns (outcome, rejections).
    With `stage`, its parts log progress lines (dtsen.progress)."""
    if file_name is not None and batch.kind is FileKind.DUKCAPIL_PENDUDUK:
        raise ValueError("Dukcapil rows are reference data: their defects go to operators, not to rejections")
    suite_json = load_suite(batch.kind)
    rules = rules_for(batch.kind)
    steps = _row_rule_statements(conn, batch, rules)
    conn.execute(steps["drop_flags"])
    # the one pass over the rows, then the suite over what it found
    with timed(Progress(stage, ["flag_rows"]) if stage else None, "flag_rows") as part:
        flagged = part.rows = conn.execute(steps["flag_rows"], batch.params).rowcount
    result = validate_views(
        conn, {FLAGS_VIEW: (steps["judged_flags"], flag_suite(suite_json, rules))}, stage=stage
    )
    outcome = _outcome(suite_json, result[FLAGS_VIEW])
    rejections = 0
    if file_name is not None and flagged:
        rejections = conn.execute(steps["reject_flagged"], batch.params | {"file_name": file_name}).rowcount
    conn.execute(steps["drop_flags"])
    return outcome, rejections


def run_authored_suite(conn: psycopg.Connection, batch: Batch) -> SuiteOutcome:
    """Run the file kind's suite as written with Great Expectations against the staged batch, on
    `conn`: one query or more per rule. The reference the one-pass validation must agree with."""
    suite_json = load_suite(batch.kind)
    result = validate_views(conn, {f"batch_{batch.name}": (batch.sql(), suite_json)})[f"batch_{batch.name}"]
    return _outcome(suite_json, result)


def store_suite_result(
    conn: psycopg.Connection, submission_pk: int, kind: FileKind, outcome: SuiteOutcome
) -> None:
    conn.execute(
        "INSERT INTO quality.suite_result (submission_pk, file_kind, suite_name, success, evaluated, failed, result) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (submission_pk, file_kind, suite_name) DO UPDATE SET "
        "success = EXCLUDED.success, evaluated = EXCLUDED.evaluated, failed = EXCLUDED.failed, "
        "result = EXCLUDED.result, run_at = now()",
        (
            submission_pk,
            kind.value,
            outcome.suite_name,
            outcome.success,
            outcome.evaluated,
            outcome.failed,
            Jsonb([r.__dict__ for r in outcome.rules]),
        ),
    )


def store_snapshot_suite_result(conn: psycopg.Connection, snapshot_pk: int, outcome: SuiteOutcome) -> None:
    conn.execute(
        "INSERT INTO quality.snapshot_suite_result (snapshot_pk, suite_name, success, evaluated, failed, result) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (snapshot_pk, suite_name) DO UPDATE SET "
        "success = EXCLUDED.success, evaluated = EXCLUDED.evaluated, failed = EXCLUDED.failed, "
        "result = EXCLUDED.result, run_at = now()",
        (
            snapshot_pk,
            outcome.suite_name,
            outcome.success,
            outcome.evaluated,
            outcome.failed,
            Jsonb([r.__dict__ for r in outcome.rules]),
        ),
    )
