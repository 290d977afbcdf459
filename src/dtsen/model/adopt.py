"""A person's decision to rank with a model: recorded with who, when, why and through which channel
(publish.ranking_model_decision), the next candidate then ranked with it (dtsen.model.store)."""

from __future__ import annotations

import psycopg

from dtsen.errors import DataError
from dtsen.model import store

CHANNELS = ("airflow-ui", "cli")


def record(
    conn: psycopg.Connection,
    model_version: int,
    *,
    adopt: bool,
    decided_by: str | None,
    reason: str | None,
    channel: str,
    approvers: tuple[str, ...] | None = None,
    timed_out: bool = False,
    dag_run_id: str | None = None,
) -> str:
    """Record an answer on a model: ADOPTED, REJECTED, TIMED_OUT, or REFUSED when an adoption comes
    from someone who is not one of `approvers` (when given: the Airflow channel) or without a reason.
    Returns the outcome. The model must exist."""
    from dtsen.publish.candidate import PUBLISH_LOCK_KEY

    store.get(conn, model_version)
    reason = (reason.strip() if isinstance(reason, str) else "") or None
    decided_by = (decided_by.strip() if isinstance(decided_by, str) else "") or None
    refused_because = None
    if adopt and approvers is not None and (decided_by or "") not in approvers:
        refused_because = "the responding user is not one of DTSEN_APPROVERS"
    elif adopt and reason is None:
        refused_because = "adopting a model needs a reason, and none was given"
    elif adopt and decided_by is None:
        refused_because = "adopting a model needs who decides"
    outcome = (
        "REFUSED" if refused_because else ("ADOPTED" if adopt else ("TIMED_OUT" if timed_out else "REJECTED"))
    )
    # one decision at a time, in line with candidate builds: a build sees a model adopted or not, whole
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
    conn.execute(
        "INSERT INTO publish.ranking_model_decision (model_version, outcome, decided_by, channel, reason, "
        "dag_run_id, refused_because) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (model_version, outcome, decided_by, channel, reason, dag_run_id, refused_because),
    )
    return outcome


def adopt_from_cli(conn: psycopg.Connection, model_version: int, by: str, reason: str) -> None:
    """`dtsen model adopt`: who and why are required (a script says who runs it)."""
    if not (by or "").strip() or not (reason or "").strip():
        raise DataError("adopting a model needs who decides (--by) and why (--reason): both are recorded")
    record(conn, model_version, adopt=True, decided_by=by, reason=reason, channel="cli")
