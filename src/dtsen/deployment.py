"""Refuse to start a deployment whose secrets are still known defaults (`dtsen check-deployment`).

docker-compose.yaml takes every secret from an `.env` file that is never committed (`.env.example`
shows the names, with placeholders). Its init job runs this check before anything else: a missing,
placeholder or well-known value stops the deployment, and so does a guessable one however long it is
(a repeated character, `1234...`, `qwerty`, a common password: `dtsen.secret_strength` estimates the
bits an attacker needs, and MIN_BITS are required), unless `DTSEN_ALLOW_INSECURE_DEFAULTS=1` is set for
a trial on a closed machine. Only the names of failing settings and the kinds of pattern found are
reported, never their values.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from dtsen.secret_strength import estimate

ALLOW_INSECURE = "DTSEN_ALLOW_INSECURE_DEFAULTS"
SECRETS: dict[str, str] = {
    "DTSEN_WAREHOUSE_PASSWORD": "the registry warehouse owner's database password (migrations only)",
    "WAREHOUSE_ROUND_PASSWORD": "the warehouse password of the round's login (role dtsen_round)",
    "WAREHOUSE_API_PASSWORD": "the warehouse password of the registry API's login (role dtsen_api)",
    "WAREHOUSE_COCKPIT_PASSWORD": "the warehouse password of the cockpit's login (role dtsen_cockpit)",
    "AIRFLOW_DB_PASSWORD": "Airflow's metadata database password",
    "AIRFLOW_FERNET_KEY": "Airflow's Fernet key (encrypts connections and variables)",
    "AIRFLOW_JWT_SECRET": "Airflow's API token signing secret",
    "REDIS_PASSWORD": "the Celery broker's (Redis) password",
    "MAILPIT_UI_AUTH": "user:password of the trial mail catcher's web UI",
    "DTSEN_API_DISCLOSURE_KEY": "the registry API's disclosure-log key",
    "DTSEN_CALLBACK_SIGNING_KEY": "the key registry API subscribers' callback secrets are derived from",
    "DTSEN_API_SIGNING_KEY": "the registry API's Ed25519 private key (signs its answers)",
}
# keys of a fixed form, judged by their 32 bytes: (decoder, what the value must be)
KEY_FORMS = {
    "AIRFLOW_FERNET_KEY": (base64.urlsafe_b64decode, "a Fernet key (32 url-safe base64-encoded bytes)"),
    "DTSEN_API_SIGNING_KEY": (
        lambda raw: base64.b64decode(raw, validate=True),
        "an Ed25519 private key (the base64 of 32 bytes: `dtsen api-signing-key generate`)",
    ),
}
# keys kept apart so that one leaking (the signing key sits in every Airflow worker) gives nothing of
# the other (the disclosure key stays in the registry API's container)
DISTINCT = ("DTSEN_API_DISCLOSURE_KEY", "DTSEN_CALLBACK_SIGNING_KEY")
MIN_LENGTH = 16
# 2^60 guesses: out of reach online and costly offline (the JWT secret and the Fernet key can be
# attacked offline). Every generator the project suggests gives 120 bits or more; a random 16-character
# value of lower-case letters and digits scores about 80.
MIN_BITS = 60
WELL_KNOWN = {
    "admin",
    "airflow",
    "changeme",
    "default",
    "dtsen",
    "password",
    "postgres",
    "redis",
    "secret",
    "test",
}
PLACEHOLDER_PREFIX = "change-me"  # what .env.example holds


def _key_bytes(name: str, value: str) -> bytes | None:
    """The 32 bytes of a key of KEY_FORMS; None if the value is not one."""
    try:
        raw = KEY_FORMS[name][0](value.encode())
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def insecure_settings(env: Mapping[str, str]) -> list[str]:
    """One line per secret that must not reach production (names and reasons only)."""
    problems = []
    for name, meaning in SECRETS.items():
        value = env.get(name, "")
        secret = value.split(":", 1)[-1] if name == "MAILPIT_UI_AUTH" else value
        if not value:
            problems.append(f"{name} ({meaning}) is not set")
        elif secret.lower().startswith(PLACEHOLDER_PREFIX) or secret.lower() in WELL_KNOWN:
            problems.append(f"{name} ({meaning}) is still a placeholder or well-known default")
        elif name in KEY_FORMS and _key_bytes(name, value) is None:
            problems.append(f"{name} is not {KEY_FORMS[name][1]}")
        elif name not in KEY_FORMS and len(secret) < MIN_LENGTH:
            problems.append(f"{name} ({meaning}) is shorter than {MIN_LENGTH} characters")
        elif (strength := _strength(name, secret)).bits < MIN_BITS:
            problems.append(
                f"{name} ({meaning}) is guessable: about {strength.bits:.0f} bits of entropy, under "
                f"{MIN_BITS}; it is made of {strength.described()}"
            )
    first, second = (env.get(name, "") for name in DISTINCT)
    if first and first == second:
        problems.append(f"{DISTINCT[1]} is the same as {DISTINCT[0]}: generate a key of its own")
    return problems


def _strength(name: str, secret: str):
    if name in KEY_FORMS:  # judged by its 32 bytes: 32 zero bytes are valid base64, yet no key
        return estimate(_key_bytes(name, secret).decode("latin-1"))
    return estimate(secret)


def check_deployment(env: Mapping[str, str]) -> tuple[bool, list[str]]:
    """(may start, lines to print)."""
    problems = insecure_settings(env)
    if not problems:
        return True, ["deployment secrets: all set, none is a known default or guessable"]
    if env.get(ALLOW_INSECURE) == "1":
        return True, [f"WARNING (trial only, {ALLOW_INSECURE}=1): {p}" for p in problems]
    return False, [
        *problems,
        "Set them in .env (see .env.example; e.g. `openssl rand -hex 24`, for the Fernet key "
        "`python -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`, and for "
        "DTSEN_API_SIGNING_KEY `dtsen api-signing-key generate`), "
        f"or set {ALLOW_INSECURE}=1 for a trial on a closed machine.",
    ]
