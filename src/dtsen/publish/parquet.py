"""Stream a query's result into a Parquet file with bounded memory, at close to COPY speed.

PostgreSQL's COPY ... TO STDOUT (CSV) feeds a pipe in a thread; pyarrow's streaming CSV reader parses
it in fixed-size blocks (C++, no per-row Python) and each block goes straight into the Parquet
writer. Memory is a few blocks whatever the row count. Column types come from the query's own
result description, so the file's schema is the warehouse's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

BLOCK_BYTES = 8 << 20
_PG_TO_ARROW = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float8": pa.float64(),
    "float4": pa.float32(),
    "numeric": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "date": pa.date32(),
    "bool": pa.bool_(),
}


def arrow_schema(conn: psycopg.Connection, query: str, params: dict | None = None) -> pa.Schema:
    cur = conn.execute(f"SELECT * FROM ({query}) q LIMIT 0", params)  # noqa: S608 (the caller's own query)
    fields = []
    for column in cur.description:
        type_name = conn.adapters.types.get(column.type_code)
        arrow = _PG_TO_ARROW.get(type_name.name if type_name else "")
        if arrow is None:
            raise TypeError(
                f"column {column.name}: no Parquet mapping for PostgreSQL type {column.type_code}"
            )
        fields.append(pa.field(column.name, arrow))
    return pa.schema(fields)


def copy_to_parquet(conn: psycopg.Connection, query: str, path: Path, params: dict | None = None) -> int:
    """Write `query`'s rows to `path` (zstd Parquet); returns the row count."""
    schema = arrow_schema(conn, query, params)
    statement = psycopg.sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(psycopg.sql.SQL(query))
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb") as out, conn.cursor().copy(statement, params) as copy:
                for chunk in copy:
                    out.write(chunk)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            failure.append(exc)

    producer = threading.Thread(target=produce, name="copy-out", daemon=True)
    producer.start()
    rows = 0
    try:
        with os.fdopen(read_fd, "rb") as source, pq.ParquetWriter(path, schema, compression="zstd") as writer:
            if not source.peek(1):  # no rows: pyarrow's CSV reader refuses an empty stream
                writer.write_table(schema.empty_table())
            else:
                reader = pacsv.open_csv(
                    source,
                    read_options=pacsv.ReadOptions(column_names=schema.names, block_size=BLOCK_BYTES),
                    parse_options=pacsv.ParseOptions(newlines_in_values=True),
                    convert_options=pacsv.ConvertOptions(
                        column_types=schema,
                        strings_can_be_null=True,  # COPY writes NULL unquoted-empty, '' quoted
                        quoted_strings_can_be_null=False,
                        true_values=["t"],
                        false_values=["f"],
                    ),
                )
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
    finally:
        producer.join()
    if failure:
        raise failure[0]
    return rows
