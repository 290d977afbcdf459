"""`dtsen check-deployment` judges how guessable a secret is, not only how long (issue 23, item 8):
16 x "a" and `password1234567890` were accepted because they are long enough. Every secret the
project tells a deployer to generate must still pass, and no refusal may print the secret."""

from __future__ import annotations

import base64
import os
import random
import secrets
import subprocess
import sys

import pytest

from dtsen.deployment import SECRETS, check_deployment
from dtsen.secret_strength import estimate


def _generated() -> dict[str, str]:
    """Every secret as .env.example and the README say to make them (`openssl rand -hex 24`; the
    Fernet key and the API's Ed25519 key as their generators make them)."""
    values = {name: secrets.token_hex(24) for name in SECRETS}
    values["AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values["DTSEN_API_SIGNING_KEY"] = base64.b64encode(
        os.urandom(32)
    ).decode()  # `dtsen api-signing-key generate`
    values["MAILPIT_UI_AUTH"] = "dataops:" + secrets.token_hex(16)
    return values


def _check(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and k != "DTSEN_ALLOW_INSECURE_DEFAULTS"}
    return subprocess.run(
        [sys.executable, "-m", "dtsen.cli", "check-deployment"],
        env=clean | env,
        capture_output=True,
        text=True,
    )


WEAK = {
    "a" * 16: "a repeated character",
    "password1234567890": "a common password",
    "abcabcabcabcabcabc": "a repeated character or piece",
    "poiuytrewqlkjhgf": "a keyboard row",
    "P@ssw0rdP@ssw0rd!!": "a common password",
    "Jakarta2026Jakarta2026": "a year or a date",
    "zyxwvutsrqponmlk": "a run like 1234",
    "13579bdfhjlnprtv": "a run like 1234",
}


@pytest.mark.parametrize("weak", list(WEAK))
def test_a_long_but_guessable_secret_is_refused_naming_the_pattern_never_the_value(weak):
    for name in ("DTSEN_WAREHOUSE_PASSWORD", "AIRFLOW_JWT_SECRET"):
        env = _generated() | {name: weak}
        ok, lines = check_deployment(env)
        assert not ok, (name, weak)
        refusal = next(line for line in lines if line.startswith(name))
        assert "guessable" in refusal and WEAK[weak] in refusal, refusal
        assert weak not in "\n".join(lines)


def test_the_issues_examples_are_refused_by_the_command_without_printing_them():
    for weak in ("a" * 16, "password1234567890"):
        env = _generated() | {"DTSEN_WAREHOUSE_PASSWORD": weak, "MAILPIT_UI_AUTH": "dataops:" + weak}
        refused = _check(env)
        assert refused.returncode == 1, refused.stdout
        assert "DTSEN_WAREHOUSE_PASSWORD" in refused.stderr and "MAILPIT_UI_AUTH" in refused.stderr
        assert "guessable" in refused.stderr
        assert weak not in refused.stderr + refused.stdout
        trial = _check(env | {"DTSEN_ALLOW_INSECURE_DEFAULTS": "1"})  # a trial on a closed machine may
        assert trial.returncode == 0 and "WARNING" in trial.stdout and "guessable" in trial.stdout
        assert weak not in trial.stdout + trial.stderr


def test_a_fernet_key_is_judged_by_its_bytes():
    for key in (bytes(32), b"password" * 4, bytes(range(32))):
        env = _generated() | {"AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(key).decode()}
        ok, lines = check_deployment(env)
        assert not ok and any(line.startswith("AIRFLOW_FERNET_KEY") and "guessable" in line for line in lines)


def test_every_secret_the_project_generates_passes():
    """The generators named in .env.example, the README and the code, many times over (a refusal of
    a random value would stop a deployment for no reason)."""
    from dtsen.deployment import MIN_BITS

    # the generators' formats over a fixed draw of bytes: the same 300 values every run (a fresh draw
    # now and then holds a run or a word that costs a few bits, and the bound below is a margin)
    draw = random.Random(27)
    generators = {
        "openssl rand -hex 24": lambda: draw.randbytes(24).hex(),
        "token_hex(16) (mail catcher)": lambda: draw.randbytes(16).hex(),
        "token_urlsafe(32) (local Airflow's disclosure key)": lambda: (
            base64.urlsafe_b64encode(draw.randbytes(32)).rstrip(b"=").decode()
        ),
        "Fernet key": lambda: base64.urlsafe_b64encode(draw.randbytes(32)).decode(),
    }
    for what, generate in generators.items():
        weakest = min(
            estimate(base64.urlsafe_b64decode(v).decode("latin-1") if what == "Fernet key" else v).bits
            for v in (generate() for _ in range(300))
        )
        assert weakest >= 2 * MIN_BITS - 10, (what, weakest)  # far above the threshold, not near it
    for _ in range(20):
        ok, lines = check_deployment(_generated())
        assert ok, lines
    assert _check(_generated()).returncode == 0


def test_a_random_sixteen_characters_or_a_long_passphrase_pass():
    from dtsen.deployment import MIN_BITS

    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for _ in range(50):
        value = "".join(secrets.choice(alphabet) for _ in range(16))
        assert estimate(value).bits >= MIN_BITS, value
    assert estimate("Tumpeng-kuning-di-puncak-Rinjani-saat-subuh").bits >= MIN_BITS
