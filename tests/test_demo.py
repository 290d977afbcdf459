"""The README's main job (`dtsen-dev demo`, as `scripts/demo` runs it) on the bundled sample, as a user runs it: every sample round
validated, merged and published; running it again publishes nothing new and rewrites nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path


def _demo(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dtsen_dev.cli", "demo"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _files(root: Path) -> dict[Path, tuple[str, int]]:
    return {
        path: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_the_main_job_publishes_every_sample_round_once(scratch_database, tmp_path):
    env = os.environ | {"DTSEN_DATABASE_URL": scratch_database("demo"), "DTSEN_HOME": str(tmp_path)}
    first = _demo(env)
    for version in (1, 2, 3):
        assert f"published: {tmp_path / 'publish' / 'versions' / str(version)}" in first
    assert first.count("run success") == 3 and "Spearman" in first
    # what each step did, read from the tasks' XComs; each round's submissions by outcome and reason
    assert first.count("this run's steps:") == 3 and first.count(" submissions: ") == 3
    assert "submissions validated" not in first and "by an earlier run" not in first
    assert "audit: passed, with" in first and "families meet rule mobil (desil 1-5 and owns a car)" in first
    # 4 regions + 4 programs, x3, and data ops told once that 2026-Q3 found verification cases overdue
    assert "mail delivered to the local SMTP sink (25 messages)" in first
    assert first.count("[DTSEN] Verification cases overdue in") == 1
    publish = tmp_path / "publish"  # versions, feedback, integrity lists: all a region or program received
    before = _files(publish)
    assert any("/feedback/2026-Q1/" in str(p) for p in before) and any("/versions/" in str(p) for p in before)
    second = _demo(env)
    assert "mail delivered to the local SMTP sink (0 messages)" in second
    assert second.count("nothing new: an earlier run had done every step") == 3  # a rerun says so
    assert second.count("was already published by an earlier run: nothing rewritten") == 3
    assert _files(publish) == before  # every file byte-identical and never rewritten
