"""The disclosure log: every API response that carried personal data, recorded before it left.

Persons are kept as keyed hashes: HMAC-SHA256 of the 16-digit NIK under the server's disclosure key
(DTSEN_API_DISCLOSURE_KEY), cut to 16 bytes. Without the key the log is no copy of the registry; with
it, "who received this person's record" is one GIN index lookup. A file download records its version,
program and sha256: a published version never changes, so its persons are that version's recipients.
Every disclosure records which fields went out: a search's are its client's scope, a file's are the
columns it was served with.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import psycopg
from psycopg.types.json import Jsonb

KEY_BYTES = 16


def person_key(nik: int | str, key: bytes) -> bytes:
    return hmac.new(key, f"{int(nik):016d}".encode(), hashlib.sha256).digest()[:KEY_BYTES]


CASES = "cases"  # the disclosure log's program of a field team's answers


def record_search(
    conn: psycopg.Connection,
    client_id: str,
    request: dict,
    version: int,
    program: str,
    niks: list[str],
    key: bytes,
    fields: tuple[str, ...],
    kind: str = "search",
) -> None:
    """A search page (or, kind 'cases', a field team's work list) and its persons' keyed hashes."""
    # the keys travel as one bytea and are cut into the array by the server: sent as a list of 1,000
    # bytea values, psycopg's array dumping took 40 ms a page, most of a search's time
    conn.execute(
        "INSERT INTO api.disclosure (client_id, kind, request, version, program, records, fields, person_keys) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, (SELECT coalesce(array_agg(substring(%s::bytea FROM i * %s + 1 "
        "FOR %s) ORDER BY i), '{}') FROM generate_series(0, %s - 1) i))",
        (
            client_id,
            kind,
            Jsonb(request),
            version,
            program,
            len(niks),
            list(fields),
            b"".join(person_key(n, key) for n in niks),
            KEY_BYTES,
            KEY_BYTES,
            len(niks),
        ),
    )


def record_file(
    conn: psycopg.Connection,
    client_id: str,
    request: dict,
    version: int,
    program: str,
    records: int,
    sha256: str,
    fields: tuple[str, ...],
) -> None:
    conn.execute(
        "INSERT INTO api.disclosure (client_id, kind, request, version, program, records, file_sha256, fields) "
        "VALUES (%s, 'file', %s, %s, %s, %s, %s, %s)",
        (client_id, Jsonb(request), version, program, records, sha256, list(fields)),
    )


_COLUMNS = ("disclosure_pk", "client_id", "at", "kind", "version", "program", "records", "request", "fields")


def of_client(conn: psycopg.Connection, client_id: str, since: dt.datetime | None = None) -> list[dict]:
    """Which records went to a client: every disclosure since `since` (all if None)."""
    rows = conn.execute(
        "SELECT disclosure_pk, client_id, at, kind, version, program, records, request, fields FROM api.disclosure "
        "WHERE client_id = %s AND at >= coalesce(%s, '-infinity'::timestamptz) ORDER BY at, disclosure_pk",
        (client_id, since),
    ).fetchall()
    return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]


def of_person(conn: psycopg.Connection, nik: int | str, key: bytes) -> list[dict]:
    """Who received this person's record: search responses that carried it, and program files of a
    version in which the person was that program's recipient."""
    rows = conn.execute(
        "SELECT disclosure_pk, client_id, at, kind, version, program, records, request, fields FROM api.disclosure "
        "WHERE kind = 'search' AND person_keys @> ARRAY[%s::bytea] "
        "UNION ALL "
        "SELECT d.disclosure_pk, d.client_id, d.at, d.kind, d.version, d.program, d.records, d.request, d.fields "
        "FROM api.disclosure d WHERE d.kind = 'file' AND EXISTS ("
        "  SELECT 1 FROM publish.recipient_span s WHERE s.program = d.program AND s.nik = %s "
        "  AND s.valid_from <= d.version AND coalesce(s.valid_to, 2147483647) > d.version) "
        "ORDER BY at, disclosure_pk",
        (person_key(nik, key), int(nik)),
    ).fetchall()
    return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]


def record_cases(
    conn: psycopg.Connection,
    client_id: str,
    request: dict,
    version: int,
    niks: list[str],
    key: bytes,
    fields: tuple[str, ...],
) -> None:
    """A field team's work list (its persons: every member of each case's family), before it leaves."""
    record_search(conn, client_id, request, version, CASES, niks, key, fields, kind="cases")
