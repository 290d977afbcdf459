"""dtsen_ranking_model: fit a welfare model from the BPS measurements the rounds brought, and put it to a
person, who adopts it (the next candidate is ranked with it) or not. Triggered by hand."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from dtsen.airflow_support import default_args, model_adoption_task, model_fit_task

DOC = """
### Fit and adopt a ranking model

**fit** learns a model of log per-capita expenditure from every family's latest BPS measurement
within the window, with the features the family had when it was measured, and regional terms
(province, kelurahan/desa) shrunk toward the national model; it measures the model's targeting
errors by cross-validation with folds by village, beside the model in use on the same folds, and
what adopting it would change in the current version. Its card is in the cockpit (Models).
**adopt** asks one of DTSEN_APPROVERS: Approve (with a reason) and the next candidate is ranked
with it, every family re-scored; Reject, or no answer in time, keeps the model in use. Every answer
is recorded (`dtsen model list`). No personal data leaves the warehouse: the card holds counts.
"""


@dag(
    dag_id="dtsen_ranking_model",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # triggered by hand: a paused DAG would hold the run
    default_args=default_args(),
    tags=["dtsen", "ranking"],
    doc_md=DOC,
    params={
        "months": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Measurement window (months). Empty: DTSEN_MODEL_TRAINING_MONTHS.",
        ),
        "folds": Param(
            None,
            type=["null", "integer"],
            minimum=2,
            maximum=20,
            description="Cross-validation folds. Empty: DTSEN_MODEL_CV_FOLDS.",
        ),
        "regions": Param(
            None,
            type=["null", "string"],
            description="Regional terms, comma-separated: province, urban, regency. "
            "Empty: DTSEN_MODEL_REGIONS.",
        ),
    },
)
def dtsen_ranking_model():
    model_fit_task()() >> model_adoption_task()


dtsen_ranking_model()
