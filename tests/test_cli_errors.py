"""A DataError reaching the command line is one plain line on stderr and exit 5 (README, "Exit
codes"); a bug keeps its traceback. The real `dtsen` command runs as a subprocess against a real
warehouse."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dtsen.cli import EXIT_DATA_ERROR, run_command

DTSEN = str(Path(sys.executable).parent / "dtsen")


def _dtsen(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DTSEN, *args], env=env, capture_output=True, text=True, timeout=300)


def _one_plain_line(done: subprocess.CompletedProcess, error: str) -> str:
    assert done.returncode == EXIT_DATA_ERROR == 5, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dtsen: error: {error}: "), done.stderr
    return lines[0]


def test_a_round_without_a_landing_folder_is_one_line_and_exit_5(fresh_db, tmp_path):
    env = os.environ | {
        "DTSEN_LANDING_ROOT": str(tmp_path / "landing"),
        "DTSEN_PUBLISH_ROOT": str(tmp_path / "pub"),
    }
    (tmp_path / "landing").mkdir()
    line = _one_plain_line(_dtsen("run-round", "--round", "2026-Q4", env=env), "LandingError")
    assert "2026-Q4" in line


def test_approving_a_published_version_is_one_line_and_exit_5(fresh_db):
    round_seq = fresh_db.execute(
        "INSERT INTO ingest.round (round_id, status) VALUES ('2026-Q1', 'PUBLISHED') RETURNING round_seq"
    ).fetchone()[0]
    fresh_db.execute(
        "INSERT INTO publish.version (version, round_seq, status, published_at) VALUES (3, %s, 'PUBLISHED', now())",
        (round_seq,),
    )
    fresh_db.commit()
    done = _dtsen("approve", "--version", "3", "--by", "nama.admin", "--reason", "why", env=dict(os.environ))
    assert "version 3 is PUBLISHED" in _one_plain_line(done, "AuditError")


def test_the_api_without_its_disclosure_key_is_one_line_and_exit_5(warehouse_url):
    env = {k: v for k, v in os.environ.items() if k != "DTSEN_API_DISCLOSURE_KEY"}
    line = _one_plain_line(_dtsen("api", "--port", "1", env=env), "DataError")
    assert "DTSEN_API_DISCLOSURE_KEY is not set" in line


def test_a_bug_in_a_command_keeps_its_traceback():
    def broken(_args):
        return {}["missing"]

    parser = argparse.ArgumentParser(prog="dtsen")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.set_defaults(func=broken)
    with pytest.raises(KeyError):
        run_command(parser, [])


def test_a_bug_in_the_real_command_prints_a_traceback():
    """A setting that breaks the code (not a DataError) surfaces as a traceback, not as exit 5."""
    env = os.environ | {"DTSEN_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/unused"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, dtsen.cli as c\n"
            "def bug(_): raise KeyError('bug')\n"
            "c.cmd_db_status = bug\n"
            "sys.exit(c.main(['db', 'status']))",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" in done.stderr and "KeyError" in done.stderr
