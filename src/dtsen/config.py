"""Settings from the environment (contract section 4), with local defaults for a fresh checkout."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dtsen.paths import PROJECT_ROOT

DEFAULT_LOCAL_PG_PORT = 54329  # away from 5432 so a system server never collides with ours
DEFAULT_RANKING_MODEL = PROJECT_ROOT / "config" / "ranking" / "pmt-v1.json"
DEFAULT_PROGRAMS = PROJECT_ROOT / "config" / "programs.json"


@dataclass(frozen=True)
class Settings:
    database_url: str | None  # None = the project's private local cluster
    home: Path  # project-local state: private cluster, default landing and publish roots
    landing_root: Path
    publish_root: Path
    raw_root: Path  # kept copies of every delivered file, content-addressed by sha256
    local_pg_port: int
    quality_gate_threshold: float
    ranking_model_path: Path  # the PMT model file (versioned; its hash is recorded per version)
    programs_path: Path  # program eligibility rules
    max_submission_bytes: int  # a submission's data files together; a larger one is refused unread
    feedback_max_rows_per_reason: int  # ditolak.csv lists at most this many rows per reason (all are counted)


def _path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def settings() -> Settings:
    """Read the environment now (not at import), so tests and CLI flags can change it."""
    home = _path("DTSEN_HOME", PROJECT_ROOT / ".dtsen")
    return Settings(
        database_url=os.environ.get("DTSEN_DATABASE_URL") or None,
        home=home,
        landing_root=_path("DTSEN_LANDING_ROOT", home / "landing"),
        publish_root=_path("DTSEN_PUBLISH_ROOT", home / "publish"),
        raw_root=_path("DTSEN_RAW_ROOT", home / "raw"),
        local_pg_port=int(os.environ.get("DTSEN_LOCAL_PG_PORT", DEFAULT_LOCAL_PG_PORT)),
        quality_gate_threshold=float(os.environ.get("DTSEN_QUALITY_GATE_THRESHOLD", "0.20")),
        ranking_model_path=_path("DTSEN_RANKING_MODEL", DEFAULT_RANKING_MODEL),
        programs_path=_path("DTSEN_PROGRAMS", DEFAULT_PROGRAMS),
        max_submission_bytes=int(os.environ.get("DTSEN_MAX_SUBMISSION_BYTES", str(1 << 30))),
        feedback_max_rows_per_reason=int(os.environ.get("DTSEN_FEEDBACK_MAX_ROWS_PER_REASON", "10000")),
    )
