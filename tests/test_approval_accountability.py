"""Who may approve a blocked candidate, and what an approval must carry, through the real Airflow
runtime: an api-server (SimpleAuthManager, SQLite metadata) beside `dag.test()` runs in a process of
their own, a real PostgreSQL warehouse after round 2026-Q1 on the sample, and a real SMTP server.

Round 2026-Q2 is ranked with PBI JK cut to desil 1-2, so its candidate drifts and waits for a person.
It is run four times, in this order, each time recording what is seen:
1. with DTSEN_APPROVERS unset: nobody may approve, so the approval task fails and asks no one;
2. with DTSEN_APPROVERS=ops: `intruder` (an Airflow user with the same role) tries to approve through
   Airflow's API, then `ops` answers Approve without a reason, as the API lets one;
3. triggered with approve_drift by a user who is not an approver;
4. triggered with approve_drift by an approver (dag.test()'s triggering user is `dag_test`).
Between 2 and 3, an Approve from outside the approvers is handed to the approval's record_approval
as the task would hand it over under an auth manager that lets anyone answer.
"""

from __future__ import annotations

import json

import psycopg
import pytest

from dtsen.warehouse import engine
from dtsen_dev.local_airflow import MailSink
from tests.factories import (
    airflow_beside_a_warehouse,
    airflow_token,
    answer_hitl,
    programs_with_pbi_jk_desil_max,
    start_update_round,
    update_round_result,
    waiting_hitl_detail,
)

PASSWORD = "approval-test-password"
REASON = "PBI JK narrowed by decree (test)"


class Deployment:
    def __init__(self, base: str, warehouse: str, env: dict, mail: MailSink, work):
        self.base, self.warehouse, self.env, self.mail, self.work = base, warehouse, env, mail, work
        self.seen: dict[str, dict] = {}

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.warehouse)) as conn:
            return conn.execute(query, params).fetchall()

    def q2_version(self) -> tuple[int, str]:
        return self.sql(
            "SELECT v.version, v.status FROM publish.version v JOIN ingest.round r USING (round_seq) "
            "WHERE r.round_id = '2026-Q2'"
        )[0]

    def run_q2(self, name: str, approvers: str | None, conf: dict | None = None) -> dict:
        env = {k: v for k, v in self.env.items() if k != "DTSEN_APPROVERS"}
        if approvers is not None:
            env["DTSEN_APPROVERS"] = approvers
        proc = start_update_round(env, {"round_id": "2026-Q2", **(conf or {})}, self.work / f"{name}.log")
        return {"proc": proc, "log": self.work / f"{name}.log"}


@pytest.fixture(scope="module")
def deployment(scratch_database, tmp_path_factory):
    work = tmp_path_factory.mktemp("approvals")
    warehouse = scratch_database("approvals")
    users = {
        "ops": ("user", PASSWORD),
        "intruder": ("user", PASSWORD),
    }  # one role: Airflow alone lets either answer
    programs = programs_with_pbi_jk_desil_max(work / "pbi-jk-1-2.json", 2)
    with airflow_beside_a_warehouse(work, warehouse, users, {"DTSEN_PROGRAMS": str(programs)}) as (
        base,
        env,
        mail,
    ):
        site = Deployment(base, warehouse, env, mail, work)
        _decide_q2_four_ways(site)
        yield site


def _decide_q2_four_ways(site: Deployment) -> None:
    site.mail.take()
    nobody = site.run_q2("nobody-may-approve", approvers=None)
    site.seen["unset"] = update_round_result(nobody["proc"], nobody["log"]) | {
        "version": site.q2_version(),
        "mail": site.mail.take(),
    }

    asked = site.run_q2("asked", approvers="ops")
    ops, intruder = airflow_token(site.base, "ops", PASSWORD), airflow_token(site.base, "intruder", PASSWORD)
    detail = waiting_hitl_detail(site.base, ops, asked["proc"], asked["log"])
    run_id = detail["task_instance"]["dag_run_id"]
    site.seen["asked"] = {
        "detail": detail,
        "intruder": answer_hitl(
            site.base, intruder, run_id, {"chosen_options": ["Approve"], "params_input": {"reason": REASON}}
        ),
        "no_reason": answer_hitl(site.base, ops, run_id, {"chosen_options": ["Approve"]}),
    }
    site.seen["asked"] |= update_round_result(asked["proc"], asked["log"]) | {"version": site.q2_version()}

    # an auth manager may let anyone answer (the SimpleAuthManager's all-admins mode does): the answer
    # that reaches the approval task is checked again, as its execute_complete hands it over
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DTSEN_DATABASE_URL", site.warehouse)
        patch.setenv("DTSEN_APPROVERS", "ops")
        from dtsen.round import RoundContext, record_approval

        site.seen["outsider"] = record_approval(
            RoundContext.create("2026-Q2", dag_run_id="manual__outsider", approval_in_airflow=True),
            approved=True,
            decided_by="anonymous",
            responder_id="anonymous",
            reason=REASON,
            timed_out=False,
        ) | {"version": site.q2_version()}

    stranger = site.run_q2(
        "trigger-not-approver", approvers="ops", conf={"approve_drift": True, "approval_reason": REASON}
    )
    site.seen["trigger_stranger"] = update_round_result(stranger["proc"], stranger["log"]) | {
        "version": site.q2_version(),
        "log": stranger["log"].read_text(),
    }

    trigger = site.run_q2(
        "trigger-approver", approvers="ops,dag_test", conf={"approve_drift": True, "approval_reason": REASON}
    )
    site.seen["trigger"] = update_round_result(trigger["proc"], trigger["log"]) | {
        "version": site.q2_version()
    }


def _decisions(site: Deployment, version: int) -> list[tuple]:
    return site.sql(
        "SELECT outcome, decided_by, channel, reason, refused_because, dag_run_id "
        "FROM publish.approval_decision WHERE version = %s ORDER BY decision_pk",
        (version,),
    )


def test_without_approvers_the_approval_task_fails_asks_no_one_and_publishes_nothing(deployment):
    unset = deployment.seen["unset"]
    assert unset["state"] == "failed" and unset["tasks"]["approval"] == "failed"
    assert unset["tasks"]["publish"] != "success"
    assert not [m for m in unset["mail"] if "Approval needed" in m["Subject"]]
    failure = [m for m in unset["mail"] if m["Subject"] == "[DTSEN] FAILED dtsen_update_round.approval"]
    assert failure and "DTSEN_APPROVERS is not set" in failure[0].get_body().get_content()


def test_the_approval_is_assigned_to_the_approvers_and_airflow_refuses_anyone_else(deployment):
    asked = deployment.seen["asked"]
    assert [u["id"] for u in asked["detail"]["assigned_users"]] == ["ops"]
    assert asked["intruder"].status_code == 403, asked["intruder"].text


def test_an_approve_without_a_reason_is_refused_recorded_and_publishes_nothing(deployment):
    asked = deployment.seen["asked"]
    assert asked["no_reason"].status_code == 200, asked["no_reason"].text  # Airflow's API takes it
    assert asked["state"] == "failed" and asked["tasks"]["approval"] == "failed"
    assert asked["tasks"]["publish"] == "upstream_failed"
    version = deployment.seen["unset"]["version"][0]
    refused = [d for d in _decisions(deployment, version) if d[5] == asked["run_id"]]
    assert refused == [
        (
            "REFUSED",
            "ops",
            "airflow-ui",
            None,
            "an Approve needs a reason, and none was given",
            asked["run_id"],
        )
    ]
    assert asked["version"] == (version, "BLOCKED")  # nothing published: the current version stays


def test_an_approve_from_outside_the_approvers_that_reaches_the_task_is_refused(deployment):
    outsider = deployment.seen["outsider"]
    assert outsider["decision"] == "REFUSED" and outsider["version"][1] == "BLOCKED"
    assert [d for d in _decisions(deployment, outsider["version"][0]) if d[5] == "manual__outsider"] == [
        (
            "REFUSED",
            "anonymous",
            "airflow-ui",
            REASON,
            "the responding user is not one of DTSEN_APPROVERS",
            "manual__outsider",
        )
    ]


def test_approve_drift_is_refused_from_a_user_who_is_not_an_approver(deployment):
    stranger = deployment.seen["trigger_stranger"]
    assert stranger["state"] == "failed" and stranger["tasks"]["open_round"] == "failed"
    assert stranger["version"][1] == "BLOCKED"
    assert not [d for d in _decisions(deployment, stranger["version"][0]) if d[5] == stranger["run_id"]]
    assert "approve_drift is taken only from a run triggered by one of DTSEN_APPROVERS" in stranger["log"]


def test_approve_drift_records_the_user_who_triggered_the_run_as_the_approver(deployment):
    trigger = deployment.seen["trigger"]
    assert trigger["state"] == "success" and trigger["tasks"]["publish"] == "success"
    version = trigger["version"][0]
    approved = deployment.sql(
        "SELECT approved_by, approval_reason FROM publish.version WHERE version = %s", (version,)
    )
    assert approved == [("dag_test", REASON)]  # Airflow's triggering user of a dag.test() run
    assert [d[:5] for d in _decisions(deployment, version) if d[2] == "airflow-trigger"] == [
        ("APPROVED", "dag_test", "airflow-trigger", REASON, None)
    ]
    manifest = json.loads(
        (deployment.work / "publish" / "versions" / str(version) / "manifest.json").read_text()
    )
    assert manifest["audit"]["approved_by"] == "dag_test"
