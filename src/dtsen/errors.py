"""The one error type a round's steps raise for bad input or configuration, and how a database error
is reported.

A DataError means a person has to act (fix a file, a setting, the order of rounds): retrying cannot
help, so Airflow fails the task at once, and the message says what to fix, in plain English, without
personal data. Anything else (a lost connection, a full disk, a bug) is retried.

A psycopg error's text carries PostgreSQL's DETAIL line, which quotes the values involved
(`Key (round_seq, no_kk)=(4, 3273...)`). Wherever an error leaves the pipeline (the `dtsen` command,
an Airflow task's log and failure email) it goes through `scrubbed`: the database's error is named
by its class, SQLSTATE and the objects involved, never by its values.
"""

from __future__ import annotations


class DataError(Exception):
    """Bad input or configuration; never retried."""


class DatabaseFailure(Exception):
    """A database error as it may be reported: named by its class, SQLSTATE and the objects involved,
    never by PostgreSQL's DETAIL, which quotes the values (a KK, a NIK). Not a DataError: retried like
    the error it stands for."""

    def __init__(self, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.sqlstate = sqlstate


# SQLSTATE classes whose primary messages name objects (a constraint, a table, a user, a lock), never
# values: connection, integrity constraint, transaction state, authorization, unknown database or
# schema, rollback (deadlock, serialization), syntax and access, resources, limits, object state,
# operator intervention, system errors. A data exception (class 22) or a RAISE (P0) may quote a value
# in the message itself, so theirs is left out.
_PRIMARY_NAMES_OBJECTS = frozenset(
    {"08", "23", "25", "28", "3D", "3F", "40", "42", "53", "54", "55", "57", "58"}
)


def database_error_text(exc: BaseException) -> str:
    """One line naming a psycopg error safely: class, SQLSTATE, constraint, table, column, the named
    statement that failed (dtsen.sqlfiles), and the primary message where it names objects only. Never
    the DETAIL, HINT or CONTEXT lines, which quote keys and rows."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return " ".join(str(exc).split())
    diag = exc.diag
    named = [f"SQLSTATE {exc.sqlstate}" if exc.sqlstate else "no SQLSTATE"]
    if diag.constraint_name:
        named.append(f"constraint {diag.constraint_name}")
    if diag.table_name:
        named.append(f"table {'.'.join(filter(None, (diag.schema_name, diag.table_name)))}")
    if diag.column_name:
        named.append(f"column {diag.column_name}")
    if diag.datatype_name:
        named.append(f"type {diag.datatype_name}")
    text = f"{type(exc).__name__} ({', '.join(named)})"
    if statement := getattr(exc, "statement", None):
        text += f" in statement {statement}"
    if exc.sqlstate:
        primary = diag.message_primary if exc.sqlstate[:2] in _PRIMARY_NAMES_OBJECTS else None
    elif isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        # raised by the client, not the server (a connection refused or lost): libpq's own words
        primary = str(exc).split("\nDETAIL:", 1)[0]
    else:
        primary = None  # the client's DataError and the like may quote the value it could not convert
    if primary:
        text += ": " + " ".join(primary.split())
    return text


def scrubbed(exc: BaseException) -> BaseException:
    """`exc` fit to be logged, printed or raised to Airflow: each psycopg error in it or in its chain
    (cause, context) is replaced by a DatabaseFailure carrying database_error_text and the original's
    traceback, so where it failed stays and what the database said about the values goes. Raise the
    result outside the `except` block that caught `exc`, or Python chains the original back on."""
    import psycopg

    done: dict[int, BaseException] = {}  # each link once: a `raise ... from exc` is cause and context

    def clean(link: BaseException | None) -> BaseException | None:
        if link is None:
            return None
        if id(link) in done:
            return done[id(link)]
        if isinstance(link, psycopg.Error):
            safe = DatabaseFailure(database_error_text(link), link.sqlstate)
            done[id(link)] = safe.with_traceback(link.__traceback__)
            safe.__cause__, safe.__context__ = clean(link.__cause__), clean(link.__context__)
            safe.__suppress_context__ = link.__suppress_context__
            return safe
        done[id(link)] = link
        suppress = link.__suppress_context__  # setting __cause__ sets it: keep what the raise said
        link.__cause__, link.__context__ = clean(link.__cause__), clean(link.__context__)
        link.__suppress_context__ = suppress
        return link

    return clean(exc) or exc
