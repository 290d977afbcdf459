"""What adopting a model would change (issue 25, the card's impact): ranking a published version again
with its own model changes nothing (the scores, desil and program rules are the version's), and with
another model the families entering and leaving desil 1-5 and the recipients added and removed add up."""

from __future__ import annotations

import copy

import pytest

from dtsen.paths import SAMPLE_DIR
from dtsen.programs import load_programs
from dtsen.rank.model import load_model, parse_model
from tests.factories import run_steps


@pytest.fixture(scope="module")
def version(module_warehouse, tmp_path_factory):
    run_steps("2026-Q1", landing_root=SAMPLE_DIR / "landing", publish_root=tmp_path_factory.mktemp("publish"))
    return module_warehouse, 1


def test_the_versions_own_model_changes_nothing(version):
    from dtsen.model.impact import impact

    conn, number = version
    with conn.transaction(force_rollback=True):
        found = impact(conn, load_model(), number, load_programs())
        recipients = dict(
            conn.execute(
                "SELECT program, count(*) FROM publish.recipient WHERE version = %s GROUP BY program",
                (number,),
            ).fetchall()
        )
        families = conn.execute(
            "SELECT count(*) FROM publish.keluarga WHERE version = %s", (number,)
        ).fetchone()[0]
    assert found["families"] == families > 0
    assert found["entering"] == found["leaving"] == 0
    assert all(r["desil_moved"] == 0 for r in found["regencies"])
    for program, change in found["programs"].items():
        assert (change["added"], change["removed"]) == (0, 0), program
        assert change["recipients"] == recipients.get(program, 0), program


def test_another_model_moves_families_and_recipients_and_the_counts_add_up(version):
    from dtsen.model.impact import impact

    conn, number = version
    document = copy.deepcopy(load_model().document)
    for term in document["terms"]:
        if term["type"] == "linear":
            term["coefficient"] = round(3 * term["coefficient"], 6)
    with conn.transaction(force_rollback=True):
        found = impact(conn, parse_model(document), number, load_programs())
        recipients = dict(
            conn.execute(
                "SELECT program, count(*) FROM publish.recipient WHERE version = %s GROUP BY program",
                (number,),
            ).fetchall()
        )
    assert found["entering"] > 0 and found["leaving"] > 0
    assert found["entering"] == sum(r["entering"] for r in found["regencies"])
    assert any(c["added"] or c["removed"] for c in found["programs"].values())
    for program, change in found["programs"].items():
        assert change["recipients"] == recipients.get(program, 0) + change["added"] - change["removed"], (
            program
        )
