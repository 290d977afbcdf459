"""Connections to the warehouse (psycopg 3): where it is, and a connection for one step."""

from __future__ import annotations

from typing import Literal

import psycopg
from sqlalchemy.engine import make_url

from dtsen.config import settings
from dtsen.warehouse import localpg

# Whose login a connection uses (sql/migrations/0030_least_privilege_roles.sql): the round's
# (DTSEN_DATABASE_URL), the owner's (migrations and administration), the registry API's, the cockpit's.
Login = Literal["round", "owner", "api", "cockpit"]


def database_url(login: Login = "round") -> str:
    """The URL of a component's login; one not configured falls back to DTSEN_DATABASE_URL, and that to
    the private local cluster (started on demand)."""
    cfg = settings()
    configured = {
        "round": cfg.database_url,
        "owner": cfg.owner_database_url,
        "api": cfg.api_database_url,
        "cockpit": cfg.cockpit_database_url,
    }[login] or cfg.database_url
    if configured:
        url = make_url(configured)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)
    return localpg.ensure_started(cfg).url


def libpq_conninfo(url: str) -> str:
    """The same URL in the form psycopg.connect() takes (no SQLAlchemy driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def connect(login: Login = "round", **kwargs) -> psycopg.Connection:
    """A raw psycopg connection (COPY, server-side cursors) with a component's login (the round's
    unless told); the caller closes it."""
    return psycopg.connect(libpq_conninfo(database_url(login)), application_name="dtsen", **kwargs)


def describe_target(url: str) -> str:
    """Host/port/database of a URL without credentials, for logs."""
    u = make_url(url)
    return f"{u.host or 'socket'}:{u.port or 5432}/{u.database}"
