"""Shared fixtures: a real PostgreSQL database per test session, migrated once.

The server is DTSEN_DATABASE_URL's, or the project's private cluster. Tests never touch the
developer's own `dtsen` database: they create `dtsen_test_<pid>_*` next to it and drop them at the end.
The migrations and the 83,762 village codes are applied once per session, to a template database;
every migrated database a test asks for is a copy of it (`CREATE DATABASE ... TEMPLATE`), which takes
a fraction of a second instead of applying every migration again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from dtsen.warehouse import engine
from dtsen.warehouse.migrate import migrate


def _admin_conninfo(url: str) -> str:
    return engine.libpq_conninfo(make_url(url).set(database="postgres").render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def server_url() -> str:
    """URL of the warehouse server (starting the private cluster if needed)."""
    return engine.database_url()


@pytest.fixture(scope="session")
def scratch_database(server_url: str):
    """Factory: create a fresh database on the server, migrated (a copy of the session's migrated
    template) unless `empty=True`; all are dropped at session end."""
    created: list[str] = []
    template = f"dtsen_test_{os.getpid()}_template"

    def url_of(name: str) -> str:
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    def fresh(name: str, template_name: str | None = None) -> None:
        with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(
                f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template_name}"' if template_name else "")
            )
        created.append(name)

    def create(suffix: str, *, empty: bool = False) -> str:
        if not empty and template not in created:
            fresh(template)
            with psycopg.connect(engine.libpq_conninfo(url_of(template))) as conn:
                migrate(conn)  # the connection closes here: a template must have no sessions to be copied
        name = f"dtsen_test_{os.getpid()}_{suffix}"
        fresh(name, None if empty else template)
        return url_of(name)

    yield create
    with psycopg.connect(_admin_conninfo(server_url), autocommit=True) as admin:
        for name in created:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def warehouse_url(scratch_database, monkeypatch_session) -> str:
    """A migrated warehouse database for this session, exported as DTSEN_DATABASE_URL."""
    url = scratch_database("wh")
    monkeypatch_session.setenv("DTSEN_DATABASE_URL", url)
    return url


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def outbox(tmp_path_factory, monkeypatch_session) -> Path:
    """Emails the steps send outside Airflow land in the session's own outbox, never the developer's."""
    folder = tmp_path_factory.mktemp("outbox")
    monkeypatch_session.setenv("DTSEN_OUTBOX", str(folder))
    monkeypatch_session.delenv("DTSEN_SMTP_URL", raising=False)
    return folder


@pytest.fixture(scope="session", autouse=True)
def api_signing_key(monkeypatch_session) -> str:
    """The registry API signs its answers and refuses to start without a key: every API a test starts,
    in process or in a process of its own, gets the tests' key unless the test says otherwise."""
    from tests.factories import API_SIGNING_KEY

    monkeypatch_session.setenv("DTSEN_API_SIGNING_KEY", API_SIGNING_KEY)
    return API_SIGNING_KEY


@pytest.fixture
def db(warehouse_url: str) -> Iterator[psycopg.Connection]:
    """A connection to the session warehouse; whatever the test leaves uncommitted is rolled back."""
    with psycopg.connect(engine.libpq_conninfo(warehouse_url)) as conn:
        yield conn
        conn.rollback()


@pytest.fixture
def round_id(db) -> str:
    """A round id later than every round registered so far in the session warehouse (rounds are ordered)."""
    latest = db.execute("SELECT max(round_id) FROM ingest.round").fetchone()[0] or "2030-Q4"
    year, quarter = int(latest[:4]), int(latest[-1])
    return f"{year + (quarter == 4)}-Q{quarter % 4 + 1}"


@pytest.fixture
def fresh_db(scratch_database, monkeypatch, request) -> Iterator[psycopg.Connection]:
    """A connection to a brand-new migrated warehouse of its own, for tests whose rounds must start
    from an empty registry (merges run in round order across the whole warehouse)."""
    url = scratch_database(f"t{abs(hash(request.node.nodeid)) % 10**8}")
    monkeypatch.setenv("DTSEN_DATABASE_URL", url)
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        yield conn
        conn.rollback()


@pytest.fixture(scope="module")
def module_warehouse(scratch_database, tmp_path_factory, request) -> Iterator[psycopg.Connection]:
    """A migrated warehouse (and raw store) of a test module's own, exported as DTSEN_DATABASE_URL
    for the module's duration: for modules that run whole rounds in order from an empty registry."""
    url = scratch_database(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DTSEN_DATABASE_URL", url)
        env.setenv("DTSEN_RAW_ROOT", str(tmp_path_factory.mktemp("raw")))
        with psycopg.connect(engine.libpq_conninfo(url)) as conn:
            yield conn
