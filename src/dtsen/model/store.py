"""Ranking models in the warehouse (publish.ranking_model, migration 0036) and which one is in use.

The model a candidate is ranked with is the one adopted last. Until a person adopts one, it is the
configured model file (DTSEN_RANKING_MODEL): the first candidate registers it and records it as
adopted by the system, so every version's model is in the warehouse, with its checksum. After an
adoption the warehouse decides; a changed file is used only once it is adopted (`dtsen model adopt
--file`)."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
from psycopg.types.json import Jsonb

from dtsen.errors import DataError
from dtsen.rank.model import RankingModel, load_model, parse_model

log = logging.getLogger(__name__)


class UnknownModel(DataError):
    pass


def _model(document: dict, sha256: str) -> RankingModel:
    model = parse_model(document)
    if model.sha256 != sha256:  # jsonb keeps the document, not its bytes: the hash is of its canonical JSON
        raise DataError(
            f"ranking model {model.name} v{model.version} in the warehouse does not match its checksum"
        )
    return model


def register(conn: psycopg.Connection, document: dict, source: str, by: str) -> int:
    """The model's number in the warehouse; a model already registered (same checksum) keeps its
    number. A fitted model's document names that number as its version (set before it is hashed)."""
    model = parse_model(document)
    known = conn.execute(
        "SELECT model_version FROM publish.ranking_model WHERE sha256 = %s", (model.sha256,)
    ).fetchone()
    if known:
        return known[0]
    number = next_version(conn)
    conn.execute(
        "INSERT INTO publish.ranking_model (model_version, name, sha256, document, source, created_by) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (number, model.name, model.sha256, Jsonb(document), source, by),
    )
    return number


def next_version(conn: psycopg.Connection) -> int:
    """The number the next registered model gets (a fitted model's document names it before hashing)."""
    return conn.execute("SELECT coalesce(max(model_version), 0) + 1 FROM publish.ranking_model").fetchone()[0]


def get(conn: psycopg.Connection, model_version: int) -> RankingModel:
    row = conn.execute(
        "SELECT document, sha256 FROM publish.ranking_model WHERE model_version = %s", (model_version,)
    ).fetchone()
    if row is None:
        raise UnknownModel(f"there is no ranking model {model_version} (`dtsen model list` shows them)")
    return _model(*row)


def adopted(conn: psycopg.Connection) -> tuple[int, RankingModel] | None:
    row = conn.execute("SELECT model_version, document, sha256 FROM publish.adopted_model").fetchone()
    return None if row is None else (row[0], _model(row[1], row[2]))


def active_model(conn: psycopg.Connection, file: Path) -> RankingModel:
    """The model the next candidate is ranked with (see the module's text). Takes the publication lock:
    a model adopted meanwhile is either seen whole or not at all."""
    from dtsen.publish.candidate import PUBLISH_LOCK_KEY

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    current = adopted(conn)
    configured = load_model(file)
    if current is None:
        number = register(conn, configured.document, "file", "system")
        conn.execute(
            "INSERT INTO publish.ranking_model_decision (model_version, outcome, decided_by, channel, reason) "
            "VALUES (%s, 'ADOPTED', 'system', 'system', %s)",
            (number, f"the configured model file ({file.name}), before any model was adopted"),
        )
        return configured
    number, model = current
    if model.sha256 != configured.sha256:
        log.info(
            "ranking with adopted model %s (v%s), not the configured file %s: adopt a file with `dtsen model adopt --file`",
            number,
            model.version,
            file.name,
        )
    return model


def model_of_version(conn: psycopg.Connection, version: int) -> RankingModel | None:
    """The model a published version was ranked with, if the warehouse holds it."""
    row = conn.execute(
        "SELECT m.document, m.sha256 FROM publish.version v "
        "JOIN publish.ranking_model m ON m.sha256 = v.ranking_model->>'sha256' WHERE v.version = %s",
        (version,),
    ).fetchone()
    return None if row is None else _model(*row)


def listed(conn: psycopg.Connection) -> list[dict]:
    """Every model: number, name, version, source, who made it, when, and whether it is in use."""
    rows = conn.execute(
        "SELECT m.model_version, m.name, m.document->>'version', m.source, m.created_by, m.created_at, "
        "m.sha256, m.model_version = (SELECT model_version FROM publish.adopted_model), "
        "c.card->'errors'->'candidate'->'national' "
        "FROM publish.ranking_model m LEFT JOIN publish.ranking_model_card c USING (model_version) "
        "ORDER BY m.model_version"
    ).fetchall()
    keys = (
        "model_version",
        "name",
        "version",
        "source",
        "created_by",
        "created_at",
        "sha256",
        "in_use",
        "cv_errors",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def current(conn: psycopg.Connection, file: Path) -> tuple[int | None, RankingModel]:
    """The model in use and its number (None: none adopted yet, the configured file)."""
    found = adopted(conn)
    return found if found else (None, load_model(file))


def write_card(
    conn: psycopg.Connection, model_version: int, card: dict, as_of_version: int, compared_with
) -> None:
    conn.execute(
        "INSERT INTO publish.ranking_model_card (model_version, as_of_version, compared_with, card) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (model_version) DO NOTHING",
        (model_version, as_of_version, compared_with, Jsonb(card)),
    )


def card(conn: psycopg.Connection, model_version: int) -> dict | None:
    row = conn.execute(
        "SELECT card FROM publish.ranking_model_card WHERE model_version = %s", (model_version,)
    ).fetchone()
    return row[0] if row else None
