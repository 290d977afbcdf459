"""`dtsen notify-retry` (added to the `dtsen` command): webhooks and registry API callbacks that
were not delivered, tried again when due."""

from __future__ import annotations

import argparse

from dtsen.config import settings


def cmd_notify_retry(_: argparse.Namespace) -> int:
    from dtsen.notify.deliver import retry_webhooks
    from dtsen.notify.subscribers import load_subscribers
    from dtsen.warehouse import engine

    with engine.connect() as conn:
        summary = retry_webhooks(conn, load_subscribers(settings().subscribers_path))
    print(f"{summary['due']} due, {summary['webhooks_delivered']} delivered now")
    for line in summary["webhooks_undelivered"]:
        print(f"not delivered: {line}")
    return 1 if summary["webhooks_undelivered"] else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    sub.add_parser(
        "notify-retry",
        help="POST again the version announcements (webhooks, registry API callbacks) not delivered "
        "whose next attempt is due; exit 1 if some are still not delivered (run it every few minutes)",
    ).set_defaults(func=cmd_notify_retry)
