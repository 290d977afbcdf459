"""A held Dukcapil extract waits for a person in Airflow: the round's extract_review task asks one of
DTSEN_APPROVERS (Airflow refuses anyone else), emails data ops the link without a single NIK, keeps
an answer without a reason as REFUSED (the round stays stopped), and once a valid answer comes, the
round goes on. Real runtime: an api-server beside `dag.test()` runs in processes of their own, a real
PostgreSQL warehouse after round 2026-Q1 on the sample, and a real SMTP server."""

from __future__ import annotations

import re

import psycopg
import pytest

from dtsen.warehouse import engine
from tests.factories import (
    airflow_beside_a_warehouse,
    airflow_token,
    answer_hitl,
    start_update_round,
    update_round_result,
    waiting_hitl_detail,
)

PASSWORD = "extract-review-test-password"
KEEP = "Keep the current reference"


@pytest.fixture(scope="module")
def seen(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("extract-review")
    warehouse = scratch_database("extract_review")
    users = {"ops": ("user", PASSWORD), "intruder": ("user", PASSWORD)}
    with airflow_beside_a_warehouse(work, warehouse, users, {"DTSEN_APPROVERS": "ops"}) as (base, env, mail):
        extract = work / "landing" / "reference" / "dukcapil" / "2026-06-27" / "penduduk.csv"
        whole = extract.read_bytes()
        extract.write_bytes(whole[: whole.index(b"\n", len(whole) // 2) + 1])  # cut in half at a line end
        mail.take()
        found: dict = {}
        ops, intruder = airflow_token(base, "ops", PASSWORD), airflow_token(base, "intruder", PASSWORD)

        first = start_update_round(env, {"round_id": "2026-Q2"}, work / "first.log")
        detail = waiting_hitl_detail(base, ops, first, work / "first.log")
        run_id = detail["task_instance"]["dag_run_id"]
        found["detail"] = detail
        found["intruder"] = answer_hitl(
            base,
            intruder,
            run_id,
            {"chosen_options": [KEEP], "params_input": {"reason": "x"}},
            "extract_review",
        )
        found["no_reason"] = answer_hitl(base, ops, run_id, {"chosen_options": [KEEP]}, "extract_review")
        found["first"] = update_round_result(first, work / "first.log") | {"mail": mail.take()}

        second = start_update_round(env, {"round_id": "2026-Q2"}, work / "second.log")
        again = waiting_hitl_detail(base, ops, second, work / "second.log")
        found["answer"] = answer_hitl(
            base,
            ops,
            again["task_instance"]["dag_run_id"],
            {"chosen_options": [KEEP], "params_input": {"reason": "extract cut in transfer"}},
            "extract_review",
        )
        found["second"] = update_round_result(second, work / "second.log")
        with psycopg.connect(engine.libpq_conninfo(warehouse)) as conn:
            found["decisions"] = conn.execute(
                "SELECT outcome, decided_by, channel, reason, refused_because FROM ingest.dukcapil_decision "
                "ORDER BY decision_pk"
            ).fetchall()
            found["round_snapshot"] = conn.execute(
                "SELECT s.snapshot_date::text FROM ingest.round r JOIN ingest.dukcapil_snapshot s "
                "ON s.snapshot_pk = r.dukcapil_snapshot_pk WHERE r.round_id = '2026-Q2'"
            ).fetchone()[0]
            found["niks"] = {str(n) for (n,) in conn.execute("SELECT nik FROM ref.dukcapil")}
        yield found


def test_the_held_extract_is_put_to_the_approvers_only_with_what_was_found(seen):
    detail = seen["detail"]
    assert detail["task_instance"]["task_id"] == "extract_review"
    assert [u["id"] for u in detail["assigned_users"]] == ["ops"]
    assert seen["intruder"].status_code == 403, seen["intruder"].text
    assert "2026-06-27" in detail["subject"] and "NIKs would go" in detail["subject"]
    assert "above the 0.50% limit" in detail["body"]
    assert not re.search(r"\d{16}", detail["body"])  # counts and codes, never a NIK


def test_data_ops_are_emailed_the_link_without_a_nik(seen):
    held = [m for m in seen["first"]["mail"] if "Dukcapil extract 2026-06-27 held" in m["Subject"]]
    assert len(held) == 1
    text = held[0].get_body(("plain", "html")).get_content()
    assert "required_actions" in text and "extract_review" in text
    assert not re.search(r"\d{16}", text)


def test_an_answer_without_a_reason_is_refused_and_the_round_stays_stopped(seen):
    first = seen["first"]
    assert seen["no_reason"].status_code == 200  # Airflow's API takes it
    assert first["state"] == "failed" and first["tasks"]["extract_review"] == "failed"
    assert first["tasks"]["finish_validation"] == "upstream_failed"
    assert seen["decisions"][0] == (
        "REFUSED",
        "ops",
        "airflow-ui",
        None,
        "a decision needs a reason, and none was given",
    )


def test_a_valid_answer_lets_the_round_go_on_with_the_reference_as_it_stood(seen):
    assert seen["answer"].status_code == 200, seen["answer"].text
    assert seen["second"]["state"] == "success", seen["second"]
    assert seen["decisions"][1:] == [("KEEP_REFERENCE", "ops", "airflow-ui", "extract cut in transfer", None)]
    assert seen["round_snapshot"] == "2026-03-28"
