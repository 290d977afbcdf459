"""The README's main job (`dtsen-dev demo`, as `scripts/demo` runs it) on the bundled sample, as a user runs it: every sample round
validated, merged and published; running it again publishes nothing new and rewrites nothing."""

from __future__ import annotations

import os
import subprocess
import sys


def _demo(env: dict) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dtsen_dev.cli", "demo"], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_main_job_publishes_every_sample_round_once(scratch_database, tmp_path):
    env = os.environ | {"DTSEN_DATABASE_URL": scratch_database("demo"), "DTSEN_HOME": str(tmp_path)}
    first = _demo(env)
    for version in (1, 2, 3):
        assert f"published: {tmp_path / 'publish' / 'versions' / str(version)}" in first
    assert first.count("run success") == 3 and "Spearman" in first
    assert "mail delivered to the local SMTP sink (24 messages)" in first  # 4 regions + 4 programs, x3
    versions = tmp_path / "publish" / "versions"
    before = {p: p.stat().st_mtime_ns for p in versions.rglob("*")}
    second = _demo(env)
    assert "mail delivered to the local SMTP sink (0 messages)" in second
    assert {p: p.stat().st_mtime_ns for p in versions.rglob("*")} == before
