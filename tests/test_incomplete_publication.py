"""A killed publication's hidden folder (`versions/.incomplete-*`, with `anggota.parquet`: every NIK
and name) must not wait on disk for the next publication (issue 23, item 9): any `dtsen` command that
opens the warehouse removes it, `dtsen versions` says so, and a publication running in another process
keeps its folder.

Each publication here is a real process: it is held while writing (a session locks a table its
program files read) until it has written `anggota.parquet`, then killed with SIGKILL, or let go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from dtsen.warehouse import engine
from tests.factories import audited_sample_candidate

PUBLISH = (
    "import sys; from pathlib import Path; from dtsen.warehouse import engine; "
    "from dtsen.publish.version import publish_version; "
    "c = engine.connect(); publish_version(c, int(sys.argv[1]), Path(sys.argv[2])); c.commit()"
)


@pytest.fixture(scope="module")
def candidate(module_warehouse, tmp_path_factory):
    """Sample round 2026-Q1 merged, its candidate built and audited, not yet published."""
    root = tmp_path_factory.mktemp("publish")
    return module_warehouse, root, audited_sample_candidate(module_warehouse, root)


class Publication:
    """A publication in a process of its own, held after it has written anggota.parquet."""

    def __init__(self, version: int, root: Path):
        self.root = root
        before = set(self.folders())  # what earlier tests' publications may have left
        self.blocker = psycopg.connect(engine.libpq_conninfo(engine.database_url()))
        self.blocker.execute("LOCK TABLE publish.recipient_span IN ACCESS EXCLUSIVE MODE")
        self.child = subprocess.Popen([sys.executable, "-c", PUBLISH, str(version), str(root)])
        deadline = time.monotonic() + 120
        while not (
            mine := [f for f in self.folders() if f not in before and (f / "anggota.parquet").exists()]
        ):
            assert time.monotonic() < deadline and self.child.poll() is None, "it never started writing"
            time.sleep(0.02)
        (self.folder,) = mine
        time.sleep(0.2)  # on to the program files, where it waits for the table

    def folders(self) -> list[Path]:
        return sorted((self.root / "versions").glob(".incomplete-*"))

    def kill(self) -> Path:
        folder = self.folder
        os.kill(self.child.pid, signal.SIGKILL)
        self.child.wait()
        self.blocker.rollback()  # its server session, freed, finds its client gone and ends
        deadline = time.monotonic() + 60
        while _sessions_of_others(self.blocker):
            assert time.monotonic() < deadline, "the killed publication's session never ended"
            time.sleep(0.05)
        self.blocker.close()
        assert (folder / "anggota.parquet").exists()  # full NIKs and names, left on disk
        return folder

    def finish(self) -> int:
        self.blocker.rollback()
        self.blocker.close()
        return self.child.wait(300)


def _sessions_of_others(conn: psycopg.Connection) -> int:
    count = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dtsen'"
    ).fetchone()[0]
    conn.rollback()
    return count


def _dtsen(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dtsen.cli", *args],
        env=os.environ | {"DTSEN_PUBLISH_ROOT": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_killed_publications_folder_is_removed_by_the_next_command_that_opens_the_warehouse(candidate):
    _, root, version = candidate
    folder = Publication(version, root).kill()
    migrated = _dtsen(root, "db", "migrate")  # any command using the warehouse, here an idempotent one
    assert migrated.returncode == 0, migrated.stderr
    assert not folder.exists() and not list((root / "versions").glob(".incomplete-*"))
    assert f"removed {folder}" in migrated.stderr  # logged, with the path only


def test_dtsen_versions_says_it_removed_a_killed_publications_folder(candidate):
    _, root, version = candidate
    folder = Publication(version, root).kill()
    listed = _dtsen(root, "versions")
    assert listed.returncode == 0, listed.stderr
    assert not folder.exists()
    assert f"removed {folder}: left by an interrupted publication (it held personal data)" in listed.stdout


def test_a_publication_running_in_another_process_keeps_its_folder_and_versions_shows_it(candidate):
    _, root, version = candidate
    running = Publication(version, root)
    folder = running.folder
    try:
        listed = _dtsen(root, "versions")
        migrated = _dtsen(root, "db", "migrate")
        assert (folder / "anggota.parquet").exists()  # not pulled from under the publication
    finally:
        finished = running.finish()
    assert listed.returncode == 0 and migrated.returncode == 0, listed.stderr + migrated.stderr
    assert f"{folder}: being written by a publication running now (left alone)" in listed.stdout
    assert finished == 0  # it went on to publish the version whole
    assert (root / "versions" / str(version) / "manifest.json").exists()
    assert not list((root / "versions").glob(".incomplete-*"))
    assert f"version {version:>4}  round 2026-Q1  PUBLISHED" in _dtsen(root, "versions").stdout
