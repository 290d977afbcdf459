"""dtsen_notify_programs: tell program owners about a newly published DTSEN version.

Scheduled on the dtsen://versions asset that dtsen_update_round's publish task emits; its one task is
the step dtsen.round.NOTIFY_PROGRAMS.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag

from dtsen.airflow_support import default_args, notify_task, versions_asset
from dtsen.round import NOTIFY_PROGRAMS

DOC = """
### Notify program owners

For a published version, each program's owners (config/subscribers.json) get an email through the
`dtsen_smtp` connection and/or a webhook POST (JSON with a delivery id and timestamp, HMAC-SHA256
signed with their own secret): version, round, recipients, added and removed, where the files are and
their SHA-256; registry API subscribers are called back the same way. No NIK or name is ever sent.
Each delivery is recorded before it is sent, so a retry sends only what did not go out. A webhook or
callback refused by the callback rules, down, or slower than DTSEN_WEBHOOK_TIMEOUT_SECONDS does not
fail the task: it is recorded as not delivered (the summary lists it) and `dtsen notify-retry` sends
it later. Delivery is at least once: a notice whose
sending was cut off (the task died after the mail server or receiver took it, before recording that)
is sent again with the same delivery id, marked as a resend (email: `[kirim ulang]` in the subject
and an `X-DTSEN-Resend` header; webhook: `redelivery: true`). Runs when a version is published;
trigger it by hand with `version` to resend a version's notices to subscribers added since. Do not
pause it: a version published while it is paused is not announced until it is triggered by hand
with that `version`.
"""


@dag(
    dag_id="dtsen_notify_programs",
    schedule=[versions_asset()],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    # Never paused by default: Airflow drops the asset events of a paused DAG (it queues runs only
    # for unpaused ones), so a version published meanwhile would never be announced.
    is_paused_upon_creation=False,
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
    notify_task(NOTIFY_PROGRAMS)()


dtsen_notify_programs()
