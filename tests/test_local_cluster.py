"""The private cluster used when DTSEN_DATABASE_URL is unset: created, started, reused, stopped."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from dtsen.config import settings
from dtsen.warehouse import engine, localpg


@pytest.fixture
def private_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DTSEN_DATABASE_URL", raising=False)
    monkeypatch.setenv("DTSEN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DTSEN_LOCAL_PG_PORT", "54391")
    yield settings()
    localpg.stop()
    # When the tmp dir is unreachable for the postgres user the cluster lives under /var/tmp.
    shutil.rmtree(localpg.cluster_for().root, ignore_errors=True)


def test_private_cluster_starts_on_demand_reuses_and_stops(private_home):
    url = engine.database_url()  # creates and starts it
    assert url.endswith(":54391/dtsen")
    with psycopg.connect(engine.libpq_conninfo(url)) as conn:
        assert conn.execute("SHOW wal_level").fetchone()[0] == "minimal"
    cluster = localpg.cluster_for()
    pid_file = cluster.data_dir / "postmaster.pid"
    first_pid = pid_file.read_text().split()[0]
    assert engine.database_url() == url  # reused, not restarted
    assert pid_file.read_text().split()[0] == first_pid
    assert localpg.stop() is True
    assert not localpg.is_running(cluster)
    assert localpg.stop() is False
    localpg.ensure_started()  # restarts the existing cluster
    assert localpg.is_running(cluster)


def test_external_url_is_used_as_given(monkeypatch):
    monkeypatch.setenv("DTSEN_DATABASE_URL", "postgresql://u:secret@db.example:5433/w")
    url = engine.database_url()
    assert url == "postgresql+psycopg://u:secret@db.example:5433/w"
    assert engine.describe_target(url) == "db.example:5433/w"
