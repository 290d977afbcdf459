"""Connections to the warehouse: SQLAlchemy 2 engine (psycopg 3) and raw psycopg for COPY."""

from __future__ import annotations

import functools

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from dtsen.config import settings
from dtsen.warehouse import localpg


def database_url() -> str:
    """DTSEN_DATABASE_URL, or the private local cluster (started on demand)."""
    cfg = settings()
    if cfg.database_url:
        url = make_url(cfg.database_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return localpg.ensure_started(cfg).url


def libpq_conninfo(url: str) -> str:
    """The same URL in the form psycopg.connect() takes (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@functools.lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    # application_name lets data ops tell pipeline sessions apart in pg_stat_activity.
    return create_engine(url, pool_pre_ping=True, connect_args={"application_name": "dtsen"})


def get_engine() -> Engine:
    return _engine_for(database_url())


def connect(**kwargs) -> psycopg.Connection:
    """A raw psycopg connection (COPY, server-side cursors); the caller closes it."""
    return psycopg.connect(libpq_conninfo(database_url()), application_name="dtsen", **kwargs)


def describe_target(url: str) -> str:
    """Host/port/database of a URL without credentials, for logs."""
    u = make_url(url)
    return f"{u.host or 'socket'}:{u.port or 5432}/{u.database}"
