"""dtsen_notify_programs: tell program owners about a newly published DTSEN version.

Scheduled on the dtsen://versions asset that dtsen_update_round's publish task emits.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, get_current_context, task

from dtsen.airflow_support import VERSIONS_NAME, VERSIONS_URI, default_args, run_step, send_email

VERSIONS = Asset(uri=VERSIONS_URI, name=VERSIONS_NAME)

DOC = """
### Notify program owners

For a published version, each program's owners (config/subscribers.json) get an email through the
`dtsen_smtp` connection and/or a webhook POST (JSON, HMAC-SHA256 signed with their own secret,
retried with backoff): version, round, recipients, added and removed, where the files are and their
SHA-256. No NIK or name is ever sent. Each delivery is recorded, so a retry sends only what did not go
out. Runs when a version is published; trigger it by hand with `version` to resend a version's
notices to subscribers added since.
"""


@dag(
    dag_id="dtsen_notify_programs",
    schedule=[VERSIONS],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    default_args=default_args(),
    tags=["dtsen", "notify"],
    doc_md=DOC,
    params={
        "version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Version to announce. Empty: the one whose publication started this run.",
        ),
    },
)
def dtsen_notify_programs():
    @task(
        doc_md="""Email and webhook every program owner of the version. **If it fails**: a webhook
    receiver refused or was unreachable after retries (see the log for which URL); what was delivered
    is recorded and is not sent again when the task is cleared."""
    )
    def notify() -> dict:
        context = get_current_context()
        version = context["params"].get("version")
        if version is None:
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            if events:
                version = events[-1].extra.get("version")
        from dtsen import tasks

        return run_step(tasks.notify_programs, version, send_email)

    notify()


dtsen_notify_programs()
