"""What the DAG files share: task defaults, data-error handling, email through Airflow's SMTP
provider, and the data-ops failure callback. Airflow is imported inside functions only, so the
package stays importable (and testable) without it.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable
from typing import Any

from dtsen.ingest.dukcapil import SnapshotConflict
from dtsen.ingest.landing import LandingError
from dtsen.ingest.register import RoundOrderError
from dtsen.merge import MergeError
from dtsen.notify.messages import Email, task_failure_email
from dtsen.notify.subscribers import SubscriberConfigError, load_subscribers
from dtsen.programs import ProgramConfigError
from dtsen.publish.audit import AuditError
from dtsen.publish.candidate import CandidateError
from dtsen.publish.version import PublishError
from dtsen.rank.model import ModelError
from dtsen.validate.rules import SuiteFormatError

log = logging.getLogger(__name__)

SMTP_CONN_ID = "dtsen_smtp"
# published versions (contract section 4): the update DAG emits it, the notify DAG is scheduled on it
VERSIONS_URI, VERSIONS_NAME = "dtsen://versions", "dtsen_versions"
OWNER = "dtsen-data-ops"
# Errors in the data or the configuration: retrying cannot help, a person has to act.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    LandingError,
    RoundOrderError,
    SnapshotConflict,
    MergeError,
    CandidateError,
    AuditError,
    PublishError,
    ModelError,
    ProgramConfigError,
    SubscriberConfigError,
    SuiteFormatError,
    LookupError,
)


def run_step(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a dtsen step; a data error fails the task at once (no retries), anything else may retry."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return step(*args, **kwargs)
    except DATA_ERRORS as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def send_email(email: Email, conn_id: str = SMTP_CONN_ID) -> None:
    """Send through the SMTP provider's hook and the `dtsen_smtp` Airflow connection."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(
            to=list(email.to),
            subject=email.subject,
            html_content=f"<pre>{html.escape(email.body)}</pre>",
            from_email=load_subscribers().from_email,
            custom_headers=email.headers() or None,
        )


def notify_data_ops_of_failure(context: dict) -> None:
    """on_failure_callback: tell data ops which task failed (the error text is redacted)."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    email = task_failure_email(
        load_subscribers().data_ops,
        dag_id,
        getattr(ti, "task_id", "?"),
        str(context.get("run_id", "?")),
        int(getattr(ti, "try_number", 0) or 0),
        context.get("exception"),
        getattr(ti, "log_url", None),
    )
    try:
        send_email(email)
    except Exception:  # noqa: BLE001 (a failing alert must not hide the original failure)
        log.exception("could not email data ops about the failure of %s", dag_id)


def default_args() -> dict:
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=20),
        "on_failure_callback": notify_data_ops_of_failure,
    }


def round_for(logical_date: dt.datetime | dt.date) -> str:
    """The round a scheduled run works on: the last quarter that ended before the run's logical date."""
    day = logical_date.date() if isinstance(logical_date, dt.datetime) else logical_date
    ended = dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1) - dt.timedelta(days=1)
    return f"{ended.year}-Q{(ended.month - 1) // 3 + 1}"
