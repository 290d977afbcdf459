"""Adopting a fitted ranking model is a person's decision, taken in Airflow (issue 25): the
dtsen_ranking_model DAG fits a model (its XCom holds a number and counts, never a NIK) and its adopt
task asks DTSEN_APPROVERS only, with the model's card summary and the link to its page; every answer
is recorded with who, when, why and the run: an Approve without a reason is REFUSED (the task fails,
the model in use stays), a Reject is REJECTED, an Approve with a reason ADOPTED (the fitted model is
then the one in use). Real runtime: an api-server beside `dag.test()` in processes of their own, and a
real PostgreSQL warehouse where the sample's rounds 2026-Q1 and 2026-Q2 were published."""

from __future__ import annotations

import json
import re

import httpx
import psycopg
import pytest

from dtsen.model.card import summary_lines
from dtsen.warehouse import engine
from tests.factories import (
    airflow_beside_a_warehouse,
    airflow_token,
    answer_hitl,
    run_steps,
    start_update_round,
    update_round_result,
    waiting_hitl_detail,
)

PASSWORD = "model-adoption-test-password"
DAG = "dtsen_ranking_model"
REASON = "fitted on the 2026 surveys, errors below the model in use"


def _fit_xcom(base: str, token: str, run_id: str):
    answer = httpx.get(
        f"{base}/api/v2/dags/{DAG}/dagRuns/{run_id}/taskInstances/fit/xcomEntries/return_value",
        params={"deserialize": "true"},
        headers={"Authorization": f"Bearer {token}"},
    )
    answer.raise_for_status()
    value = answer.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _asked_and_answered(base: str, env: dict, work, name: str, token: str, answer: dict, **also) -> dict:
    """One run of the DAG: the adopt task's request once it waits, the fit's XCom, the answer (and any
    earlier answers in `also`: name -> (token, body)), and the run's end."""
    log = work / f"{name}.log"
    proc = start_update_round(env, {}, log, dag_id=DAG)
    detail = waiting_hitl_detail(base, token, proc, log, timeout=900, dag_id=DAG)
    run_id = detail["task_instance"]["dag_run_id"]
    found = {"detail": detail, "run_id": run_id, "fit": _fit_xcom(base, token, run_id)}
    for key, (other, body) in also.items():
        found[key] = answer_hitl(base, other, run_id, body, "adopt", DAG)
    found["answer"] = answer_hitl(base, token, run_id, answer, "adopt", DAG)
    found["result"] = update_round_result(proc, log)
    return found


def _in_use(conn) -> tuple:
    return conn.execute("SELECT model_version, sha256 FROM publish.adopted_model").fetchone()


@pytest.fixture(scope="module")
def seen(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("model-adoption")
    warehouse = scratch_database("model_adoption")
    users = {"ops": ("user", PASSWORD), "lead": ("user", PASSWORD), "intruder": ("user", PASSWORD)}
    with airflow_beside_a_warehouse(work, warehouse, users, {"DTSEN_APPROVERS": "ops,lead"}) as (
        base,
        env,
        _,
    ):
        with pytest.MonkeyPatch.context() as patch:  # round 2026-Q2 too: its BPS measurements to fit on
            for key in ("DTSEN_DATABASE_URL", "DTSEN_LANDING_ROOT", "DTSEN_PUBLISH_ROOT", "DTSEN_RAW_ROOT"):
                patch.setenv(key, env[key])
            run_steps("2026-Q2", landing_root=work / "landing", publish_root=work / "publish")
        ops, lead = airflow_token(base, "ops", PASSWORD), airflow_token(base, "lead", PASSWORD)
        intruder = airflow_token(base, "intruder", PASSWORD)
        found: dict = {}
        with psycopg.connect(engine.libpq_conninfo(warehouse), autocommit=True) as conn:
            found["in_use_before"] = _in_use(conn)
            found["refused"] = _asked_and_answered(
                base,
                env,
                work,
                "refused",
                ops,
                {"chosen_options": ["Approve"]},
                intruder=(intruder, {"chosen_options": ["Approve"], "params_input": {"reason": "x"}}),
            )
            found["rejected"] = _asked_and_answered(
                base,
                env,
                work,
                "rejected",
                ops,
                {"chosen_options": ["Reject"], "params_input": {"reason": "wait for the Q3 surveys"}},
            )
            found["in_use_after_no"] = _in_use(conn)
            found["adopted"] = _asked_and_answered(
                base,
                env,
                work,
                "adopted",
                lead,
                {"chosen_options": ["Approve"], "params_input": {"reason": REASON}},
            )
            found["in_use_after_yes"] = _in_use(conn)
            found["decisions"] = conn.execute(
                "SELECT model_version, outcome, decided_by, channel, reason, dag_run_id, refused_because "
                "FROM publish.ranking_model_decision WHERE channel = 'airflow-ui' ORDER BY decision_pk"
            ).fetchall()
            found["models"] = dict(
                conn.execute("SELECT model_version, sha256 FROM publish.ranking_model WHERE source = 'fit'")
            )
            found["cards"] = dict(conn.execute("SELECT model_version, card FROM publish.ranking_model_card"))
        found["base"] = base
        yield found


def test_the_fitted_model_is_put_to_the_approvers_only_with_its_card_and_link(seen):
    base = seen["base"]
    for name in ("refused", "rejected", "adopted"):
        run = seen[name]
        number = run["fit"]["model_version"]
        detail = run["detail"]
        assert detail["task_instance"]["task_id"] == "adopt"
        assert [u["id"] for u in detail["assigned_users"]] == ["ops", "lead"]
        assert detail["subject"] == f"Adopt ranking model {number}?"
        for line in summary_lines(seen["cards"][number]):
            assert line in detail["body"], line
        assert "cross-validated targeting errors" in detail["body"]
        assert f"{base}/dtsen/models/{number}" in detail["body"]
        assert not re.search(r"\d{16}", detail["body"])  # counts, never a NIK
    assert seen["refused"]["intruder"].status_code == 403, seen["refused"]["intruder"].text


def test_the_fit_hands_on_only_the_models_number_and_counts(seen):
    numbers = [seen[name]["fit"]["model_version"] for name in ("refused", "rejected", "adopted")]
    assert len(set(numbers)) == 3 and set(numbers) == set(seen["models"])  # a fresh fit each run
    for name in ("refused", "rejected", "adopted"):
        fit = seen[name]["fit"]
        assert set(fit) == {
            "model_version",
            "sha256",
            "families",
            "villages",
            "as_of_version",
            "entering",
            "leaving",
            "seconds",  # each part's, for the log and the benchmark
        }
        assert fit["sha256"] == seen["models"][fit["model_version"]]
        assert fit["families"] > 0 and fit["as_of_version"] == 2
        assert all(isinstance(fit[k], int) for k in set(fit) - {"sha256", "seconds"}), fit
        assert set(fit["seconds"]) == {"training_frame", "fit", "cross_validate", "evaluate", "impact"}
        assert all(isinstance(v, float) for v in fit["seconds"].values()), fit
        assert re.fullmatch(r"[0-9a-f]{64}", fit["sha256"])


def test_an_approve_without_a_reason_is_refused_the_task_fails_and_the_model_in_use_stays(seen):
    run = seen["refused"]
    assert run["answer"].status_code == 200, run["answer"].text  # Airflow's API takes it
    assert run["result"]["state"] == "failed" and run["result"]["tasks"] == {
        "fit": "success",
        "adopt": "failed",
    }
    assert seen["decisions"][0] == (
        run["fit"]["model_version"],
        "REFUSED",
        "ops",
        "airflow-ui",
        None,
        run["run_id"],
        "adopting a model needs a reason, and none was given",
    )
    assert seen["in_use_after_no"] == seen["in_use_before"]


def test_a_reject_is_recorded_with_who_and_why_and_the_model_in_use_stays(seen):
    run = seen["rejected"]
    assert run["answer"].status_code == 200, run["answer"].text
    assert run["result"]["state"] == "success", run["result"]
    assert seen["decisions"][1] == (
        run["fit"]["model_version"],
        "REJECTED",
        "ops",
        "airflow-ui",
        "wait for the Q3 surveys",
        run["run_id"],
        None,
    )
    assert seen["in_use_after_no"] == seen["in_use_before"]


def test_an_approve_with_a_reason_from_an_approver_adopts_the_fitted_model(seen):
    run = seen["adopted"]
    assert run["answer"].status_code == 200, run["answer"].text
    assert run["result"]["state"] == "success" and run["result"]["tasks"]["adopt"] == "success", run["result"]
    number = run["fit"]["model_version"]
    assert seen["decisions"][2:] == [(number, "ADOPTED", "lead", "airflow-ui", REASON, run["run_id"], None)]
    assert seen["in_use_after_yes"] == (number, run["fit"]["sha256"]) != seen["in_use_before"]
