"""How a round's emails leave the process when Airflow does not send them (`dtsen run-round`, the
main job without Airflow, benchmarks): an SMTP server named by DTSEN_SMTP_URL, or else an outbox
folder of .eml files, DTSEN_OUTBOX (nothing is sent to real people by accident, nothing is lost).
Airflow runs send through the SMTP provider's hook instead (`dtsen.airflow_support.send_email`).
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from dtsen.config import Settings
from dtsen.errors import DataError
from dtsen.notify.messages import Email
from dtsen.storage import atomic_write

SendEmail = Callable[[Email], None]

# Failures after which the message surely did not reach the mail server: it refused the connection,
# the sender, the recipients or the data, or could not be reached at all. A notice that failed so is
# no resend when sent again; after any other failure (a timeout, a dropped connection, an error on
# QUIT after the data was taken) it may have arrived.
NOT_ACCEPTED: tuple[type[BaseException], ...] = (
    smtplib.SMTPConnectError,
    smtplib.SMTPHeloError,
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
    smtplib.SMTPSenderRefused,
    smtplib.SMTPRecipientsRefused,
    smtplib.SMTPDataError,
    ConnectionRefusedError,
    socket.gaierror,
)


def build_message(email: Email, from_email: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = from_email
    message["To"] = ", ".join(email.to)
    message["Subject"] = email.subject
    message["Date"] = formatdate(localtime=False)
    for name, value in email.headers().items():
        message[name] = value
    message.set_content(email.body)
    return message


def smtp_sender(url: str, from_email: str) -> SendEmail:
    """smtp://host:port (plain, for a local relay), smtp://host:port?starttls=1, or smtps://host:port;
    user:password@ in the URL logs in."""
    parsed = urlparse(url)
    if parsed.scheme not in ("smtp", "smtps") or not parsed.hostname:
        raise DataError(f"DTSEN_SMTP_URL must look like smtp://host:port (got scheme {parsed.scheme!r})")
    starttls = parse_qs(parsed.query).get("starttls", ["0"])[0] == "1"

    def send(email: Email) -> None:
        client = smtplib.SMTP_SSL if parsed.scheme == "smtps" else smtplib.SMTP
        with client(
            parsed.hostname, parsed.port or (465 if parsed.scheme == "smtps" else 25), timeout=30
        ) as smtp:
            if starttls:
                smtp.starttls()
            if parsed.username:
                smtp.login(parsed.username, parsed.password or "")
            smtp.send_message(build_message(email, from_email))

    return send


def outbox_sender(folder: Path, from_email: str) -> SendEmail:
    """Each email as an .eml file named by its delivery id (a resend overwrites its own file)."""

    def send(email: Email) -> None:
        name = email.delivery_id or f"{abs(hash((email.to, email.subject, email.body)))}"
        atomic_write(folder / f"{name}.eml", bytes(build_message(email, from_email)))

    return send


def default_sender(cfg: Settings) -> SendEmail:
    from dtsen.notify.subscribers import load_subscribers

    from_email = load_subscribers(cfg.subscribers_path).from_email
    if cfg.smtp_url:
        return smtp_sender(cfg.smtp_url, from_email)
    return outbox_sender(cfg.outbox, from_email)
