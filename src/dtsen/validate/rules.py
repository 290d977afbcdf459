"""Row rules read from the committed suites, as SQL predicates over a staged batch.

Each expectation in expectations/*.json becomes one Rule: the predicate selecting the rows that fail
it, and the flag column that holds its outcome per row when a file is validated in one pass
(dtsen.validate.run). A test runs Great Expectations on the suites as written and checks that it
finds exactly the rows these predicates reject.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psycopg import sql

from dtsen.contract import FileKind
from dtsen.errors import DataError
from dtsen.validate.suites import load_suite

ROWS_PREFIX = "SELECT line_no FROM {batch} WHERE "


class SuiteFormatError(DataError):
    pass


@dataclass(frozen=True)
class Rule:
    rule_id: str
    reason_code: str
    field: str
    predicate: sql.Composable  # true for rows that fail the rule
    flag: str  # the column holding the rule's outcome for a row (true: the row fails it)


def _predicate(expectation: dict) -> sql.Composable:
    kind, kwargs = expectation["type"], expectation["kwargs"]
    if kind == "expect_column_values_to_not_be_null":
        return sql.SQL("{} IS NULL").format(sql.Identifier(kwargs["column"]))
    if kind == "expect_column_values_to_be_in_set":
        # GE ignores NULLs in map expectations; so must we.
        return sql.SQL("{col} IS NOT NULL AND {col} NOT IN ({values})").format(
            col=sql.Identifier(kwargs["column"]),
            values=sql.SQL(", ").join(sql.Literal(str(v)) for v in kwargs["value_set"]),
        )
    if kind == "expect_column_value_lengths_to_be_between":
        # GE measures length() of non-null values; bounds are inclusive
        col = sql.Identifier(kwargs["column"])
        bounds = []
        if kwargs.get("min_value") is not None:
            bounds.append(sql.SQL("length({}) < {}").format(col, sql.Literal(int(kwargs["min_value"]))))
        if kwargs.get("max_value") is not None:
            bounds.append(sql.SQL("length({}) > {}").format(col, sql.Literal(int(kwargs["max_value"]))))
        return sql.SQL("{} IS NOT NULL AND ({})").format(col, sql.SQL(" OR ").join(bounds))
    if kind == "unexpected_rows_expectation":
        query = kwargs["unexpected_rows_query"]
        if not query.startswith(ROWS_PREFIX):
            raise SuiteFormatError(f"row rule must start with {ROWS_PREFIX!r}: {query[:80]!r}")
        # Undo str.format escaping: GE formats the query once, with {batch} as the only field.
        where = query.removeprefix(ROWS_PREFIX).replace("{{", "{").replace("}}", "}")
        return sql.SQL(where)  # authored suite text from the repository, not outside input
    raise SuiteFormatError(f"expectation type {kind} has no row-rule translation")


def rules_for(kind: FileKind) -> list[Rule]:
    suite = load_suite(kind)
    rules = []
    for index, expectation in enumerate(suite["expectations"]):
        meta = expectation.get("meta") or {}
        if "reason_code" not in meta or "field" not in meta or "rule" not in meta:
            raise SuiteFormatError(f"expectation without reason_code/field/rule meta in {suite['name']}")
        if not CODE_RE.fullmatch(meta["reason_code"]) or not FIELD_RE.fullmatch(meta["field"]):
            raise SuiteFormatError(f"{meta['rule']}: reason_code and field must be plain names")
        rules.append(
            Rule(
                meta["rule"], meta["reason_code"], meta["field"], _predicate(expectation), f"rule_{index:02d}"
            )
        )
    return rules


# Codes and fields are written into the one-pass SQL as literals: plain names only.
CODE_RE = re.compile(r"[A-Z][A-Z_]*")
FIELD_RE = re.compile(r"[a-z][a-z0-9_]*")
