"""Where the project's own files live (repository checkout or installed package)."""

from __future__ import annotations

from pathlib import Path

# src/dtsen/paths.py -> repository root. The package is installed editable from the checkout, so
# sql/, data/ and expectations/ are read from the repository itself.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SQL_DIR = PROJECT_ROOT / "sql"
DATA_DIR = PROJECT_ROOT / "data"
REFERENCE_DIR = DATA_DIR / "reference"
SAMPLE_DIR = DATA_DIR / "sample"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
