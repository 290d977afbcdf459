"""The suites validation runs (expectations/*.json) are the ones the authoring code writes."""

from __future__ import annotations

from dtsen.paths import EXPECTATIONS_DIR
from dtsen.validate.suites import write_suites


def test_committed_suites_are_what_the_authoring_code_writes(tmp_path):
    # a rule changed in one place only: the JSON is what runs, the code is what the next rewrite keeps
    written = write_suites(tmp_path)
    differing = [p.name for p in written if p.read_bytes() != (EXPECTATIONS_DIR / p.name).read_bytes()]
    assert written and differing == [], (
        f"run `python -m dtsen.validate.suites` and review the diff: {differing}"
    )
