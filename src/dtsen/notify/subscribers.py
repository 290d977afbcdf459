"""Who receives what (config/subscribers.json; DTSEN_SUBSCRIBERS points elsewhere)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dtsen.errors import DataError

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class SubscriberConfigError(DataError):
    pass


@dataclass(frozen=True)
class Webhook:
    url: str
    secret_env: str  # the environment variable holding this subscriber's HMAC secret

    def secret(self) -> bytes:
        value = os.environ.get(self.secret_env)
        if not value:
            raise SubscriberConfigError(f"webhook secret {self.secret_env} is not set in the environment")
        return value.encode()


@dataclass(frozen=True)
class ProgramSubscribers:
    emails: tuple[str, ...] = ()
    webhooks: tuple[Webhook, ...] = ()


@dataclass(frozen=True)
class Subscribers:
    from_email: str
    files_base_url: str
    data_ops: tuple[str, ...]
    programs: dict[str, ProgramSubscribers] = field(default_factory=dict)
    region_pattern: str = ""
    region_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    feedback_base_url: str = ""  # where regions fetch their feedback folder; empty: named relative to it
    # the channel collecting households' objections and proposals: called back with each round's outcomes
    aduan: ProgramSubscribers = field(default_factory=ProgramSubscribers)

    def region_emails(self, kode_kabupaten: str) -> tuple[str, ...]:
        if kode_kabupaten in self.region_overrides:
            return self.region_overrides[kode_kabupaten]
        return (self.region_pattern.format(kode_kabupaten=kode_kabupaten),) if self.region_pattern else ()


def _emails(raw: object, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(e, str) and _EMAIL.match(e) for e in raw):
        raise SubscriberConfigError(f"{where}: expected a list of email addresses")
    return tuple(raw)


def _receivers(raw: dict, where: str) -> ProgramSubscribers:
    hooks = []
    for i, hook in enumerate(raw.get("webhooks", [])):
        url, env = hook.get("url", ""), hook.get("secret_env", "")
        if not url.startswith(("https://", "http://")) or not re.match(r"^[A-Z][A-Z0-9_]*$", env):
            raise SubscriberConfigError(f"{where}.webhooks[{i}]: needs an http(s) url and a secret_env name")
        hooks.append(Webhook(url, env))
    return ProgramSubscribers(_emails(raw.get("emails", []), f"{where}.emails"), tuple(hooks))


def _channel(raw: dict) -> ProgramSubscribers:
    """The aduan channel is a system: it is called back (webhooks), not emailed."""
    if raw.get("emails"):
        raise SubscriberConfigError(
            "aduan: the channel is told by webhooks (a signed callback), not by email"
        )
    return _receivers(raw, "aduan")


def parse_subscribers(document: dict) -> Subscribers:
    programs = {pid: _receivers(raw, f"programs.{pid}") for pid, raw in document.get("programs", {}).items()}
    regions = document.get("regions", {})
    return Subscribers(
        from_email=document.get("from_email", "dtsen-noreply@localhost"),
        files_base_url=document.get("files_base_url", ""),
        feedback_base_url=document.get("feedback_base_url", ""),
        data_ops=_emails(document.get("data_ops", {}).get("emails", []), "data_ops.emails"),
        programs=programs,
        aduan=_channel(document.get("aduan", {})),
        region_pattern=regions.get("pattern", ""),
        region_overrides={
            k: _emails(v, f"regions.overrides.{k}") for k, v in regions.get("overrides", {}).items()
        },
    )


def load_subscribers(path: Path | None = None) -> Subscribers:
    from dtsen.config import settings

    path = Path(path or settings().subscribers_path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SubscriberConfigError(f"subscribers file {path} cannot be read: {type(exc).__name__}") from exc
    return parse_subscribers(document)
