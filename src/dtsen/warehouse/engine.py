"""Connections to the warehouse (psycopg 3): where it is, and a connection for one step."""

from __future__ import annotations

import psycopg
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


def connect(**kwargs) -> psycopg.Connection:
    """A raw psycopg connection (COPY, server-side cursors); the caller closes it."""
    return psycopg.connect(libpq_conninfo(database_url()), application_name="dtsen", **kwargs)


def describe_target(url: str) -> str:
    """Host/port/database of a URL without credentials, for logs."""
    u = make_url(url)
    return f"{u.host or 'socket'}:{u.port or 5432}/{u.database}"
