"""Headers, transport and keys of the registry API and the cockpit (issue 24, item 9).

- every answer of a real `dtsen api` (JSON, errors, the Parquet download) and of the cockpit (pages,
  JSON, errors, mounted under a prefix as Airflow's api-server mounts it) carries a Content-Security-
  Policy, X-Frame-Options, nosniff, no-referrer and no-store;
- `dtsen api` serves HTTPS with a certificate, and refuses plain HTTP on an address other hosts reach;
- a subscriber's callbacks are signed with the secret the API handed it at subscription, by a notify
  step that has no DTSEN_API_DISCLOSURE_KEY; subscriptions made under the disclosure key keep working
  while it is there, and move to the signing key when their client subscribes again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from dtsen.publish.version import publish_version
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import audited_sample_candidate, running_registry_api, start_webhook_receiver

KEY = "security-headers-disclosure-key"
SIGNING_KEY = "security-headers-callback-signing-key"
NOW = "2026-12-04T10:00:00+07:00"


def _security_headers(answer: httpx.Response, *, framed_by_self: bool = False) -> None:
    where = f"{answer.request.method} {answer.request.url.path} -> {answer.status_code}"
    policy = answer.headers.get("content-security-policy", "")
    assert policy.startswith("default-src 'none'"), where
    assert ("frame-ancestors 'self'" if framed_by_self else "frame-ancestors 'none'") in policy, where
    assert answer.headers.get("x-frame-options") == ("SAMEORIGIN" if framed_by_self else "DENY"), where
    assert answer.headers.get("x-content-type-options") == "nosniff", where
    assert answer.headers.get("referrer-policy") == "no-referrer", where
    assert answer.headers.get("cache-control") == "no-store", where


class Site:
    def __init__(self, base: str, env: dict, version: int, secret: str, work) -> None:
        self.base, self.env, self.version, self.secret, self.work = base, env, version, secret, work

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.env["DTSEN_DATABASE_URL"]), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def token(self) -> str:
        answer = httpx.post(
            f"{self.base}/oauth2/client/token",
            data={"grant_type": "client_credentials", "client_id": "bpjs", "client_secret": self.secret},
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]

    def subscribe(self, callback: str) -> dict:
        envelope = {
            "signature": "",
            "header": {
                "version": "1.0.0",
                "message_id": "msg-1",
                "message_ts": NOW,
                "action": "subscribe",
                "sender_id": "bpjs",
                "total_count": 1,
                "sender_uri": callback,
            },
            "message": {
                "transaction_id": "txn-1",
                "subscribe_request": [
                    {
                        "reference_id": "s1",
                        "timestamp": NOW,
                        "subscribe_criteria": {"reg_event_type": "dtsen:VersionPublished"},
                    }
                ],
            },
        }
        answer = httpx.post(
            f"{self.base}/registry/sync/subscribe",
            json=envelope,
            headers={"Authorization": f"Bearer {self.token()}"},
            timeout=60,
        )
        assert answer.status_code == 200, f"{answer.status_code} {answer.text}"
        (made,) = answer.json()["message"]["subscribe_response"][0]["subscriptions"]
        return made

    def notify(self, **env: str | None) -> subprocess.CompletedProcess:
        """The notify step (dtsen_notify_programs' task) in a process of its own, with `env` changed
        (None removes a variable)."""
        run_env = {k: v for k, v in (self.env | env).items() if v is not None}
        return subprocess.run(
            [
                sys.executable,
                "-c",
                "import json; from dtsen.round import NOTIFY_PROGRAMS, RoundContext; "
                f"print(json.dumps(NOTIFY_PROGRAMS.run(RoundContext.create('', version={self.version}))))",
            ],
            env=run_env,
            capture_output=True,
            text=True,
            timeout=300,
        )


@pytest.fixture(scope="module")
def site(module_warehouse, tmp_path_factory):
    """A published sample version, client `bpjs` (PBI JK), and `dtsen api` on loopback with both keys."""
    from dtsen.api.clients import create_client

    work = tmp_path_factory.mktemp("security-headers")
    root = work / "publish"
    conn = module_warehouse
    version = audited_sample_candidate(conn, root)
    with conn.transaction():
        publish_version(conn, version, root)
    with conn.transaction():
        secret = create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 600, {"pbi_jk"})
    port = free_port()
    env = os.environ | {
        "DTSEN_PUBLISH_ROOT": str(root),
        "DTSEN_OUTBOX": str(work / "outbox"),
        "DTSEN_API_DISCLOSURE_KEY": KEY,
        "DTSEN_CALLBACK_SIGNING_KEY": SIGNING_KEY,
        "DTSEN_CALLBACK_ALLOWLIST": "127.0.0.1",  # the test's receivers, on loopback
    }
    with running_registry_api(env, work / "api.log", port) as (base, _):
        yield Site(base, env, version, secret, work)


# -- headers ---------------------------------------------------------------------------------------


def test_every_registry_api_answer_carries_the_security_headers(site):
    token = site.token()
    auth = {"Authorization": f"Bearer {token}"}
    answers = {
        "token": httpx.post(
            f"{site.base}/oauth2/client/token",
            data={"grant_type": "client_credentials", "client_id": "bpjs", "client_secret": site.secret},
        ),
        "versions": httpx.get(f"{site.base}/registry/versions", headers=auth),
        "no token": httpx.get(f"{site.base}/registry/versions"),
        "unknown route": httpx.get(f"{site.base}/registry/nothing-here", headers=auth),
        "not json": httpx.post(
            f"{site.base}/registry/sync/search", content=b"<x/>", headers=auth | {"content-type": "text/xml"}
        ),
        "file": httpx.get(
            f"{site.base}/registry/versions/{site.version}/programs/pbi_jk.parquet", headers=auth, timeout=60
        ),
    }
    assert {name: a.status_code for name, a in answers.items()} == {
        "token": 200,
        "versions": 200,
        "no token": 401,
        "unknown route": 404,
        "not json": 415,
        "file": 200,
    }
    assert answers["file"].content[:4] == b"PAR1"
    for answer in answers.values():
        _security_headers(answer)


def _cockpit():
    """The cockpit app mounted under /dtsen in a parent app, as Airflow's api-server mounts a plugin's
    fastapi_apps, with every route let through (Airflow's authentication is not under test here)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dtsen.cockpit.app import create_app

    server = FastAPI()
    server.mount("/dtsen", create_app(reader=lambda: "ops"))
    return TestClient(server)


def test_every_cockpit_answer_carries_the_security_headers_and_its_style_is_allowed_by_hash(
    module_warehouse, monkeypatch
):
    monkeypatch.setenv("DTSEN_COCKPIT_DATABASE_URL", os.environ["DTSEN_DATABASE_URL"])
    with _cockpit() as http:
        answers = {
            "rounds page": http.get("/dtsen/"),
            "versions page": http.get("/dtsen/versions"),
            "rounds json": http.get("/dtsen/api/rounds"),
            "missing round page": http.get("/dtsen/rounds/1999-Q1"),
            "missing round json": http.get("/dtsen/api/rounds/1999-Q1"),
            "unknown route": http.get("/dtsen/nothing-here"),
        }
    assert {name: a.status_code for name, a in answers.items()} == {
        "rounds page": 200,
        "versions page": 200,
        "rounds json": 200,
        "missing round page": 404,
        "missing round json": 404,
        "unknown route": 404,
    }
    for answer in answers.values():
        _security_headers(answer, framed_by_self=True)  # the Airflow UI shows it in its own iframe
    page = answers["rounds page"]
    policy = page.headers["content-security-policy"]
    assert "script-src" not in policy and "unsafe-inline" not in policy  # no script at all
    # the page's own <style> block is what the policy's hash allows, so the browser applies it ...
    (style,) = re.findall(r"<style>(.*?)</style>", page.text, flags=re.S)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    # ... and no style attribute, which that policy would block
    assert not any("style=" in a.text for a in answers.values())


# -- transport -------------------------------------------------------------------------------------


def test_the_registry_api_serves_https_with_a_certificate_and_says_so(site, tmp_path):
    cert, key = tmp_path / "api.crt", tmp_path / "api.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dtsen",
            "api",
            "--port",
            str(port),
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        env=site.env,
        stdout=open(tmp_path / "api.log", "w"),  # noqa: SIM115 (closed with the process)
        stderr=subprocess.STDOUT,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        deadline, answer = time.monotonic() + 60, None
        while answer is None and time.monotonic() < deadline:
            try:
                answer = httpx.get(f"https://127.0.0.1:{port}/registry/versions", verify=trusted)
            except httpx.TransportError:
                assert server.poll() is None, (tmp_path / "api.log").read_text()
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 401  # over TLS, and still asks for a token
        _security_headers(answer)
        assert answer.headers["strict-transport-security"].startswith("max-age=")
        with pytest.raises(httpx.TransportError):  # no plain HTTP on that port
            httpx.get(f"http://127.0.0.1:{port}/registry/versions", timeout=5)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_registry_api_refuses_plain_http_on_an_address_other_hosts_reach(site):
    port = free_port()
    try:
        refused = subprocess.run(
            [sys.executable, "-m", "dtsen", "api", "--host", "0.0.0.0", "--port", str(port)],
            env=site.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("dtsen api served plain HTTP on 0.0.0.0")
    assert refused.returncode != 0
    assert "refusing plain HTTP on 0.0.0.0" in refused.stderr and "--tls-cert" in refused.stderr


# -- keys ------------------------------------------------------------------------------------------


def test_callbacks_verify_with_the_secret_given_at_subscription_signed_without_the_disclosure_key(site):
    from dtsen.api.subscriptions import secret_of
    from dtsen.notify.webhook import verify

    receiver, url, calls = start_webhook_receiver()
    try:
        made = site.subscribe(f"{url}/dtsen")
        assert made["secret"].encode() != secret_of(made["code"], KEY.encode())  # not the disclosure key's
        # the Airflow worker's environment: the signing key, no disclosure key
        done = site.notify(DTSEN_API_DISCLOSURE_KEY=None)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.splitlines()[-1])["webhooks_delivered"] == 1
    finally:
        receiver.shutdown()
    (call,) = calls
    assert verify(made["secret"].encode(), call["timestamp"], call["body"], call["signature"])
    assert json.loads(call["body"])["subscription_code"] == made["code"]


def test_a_subscription_made_under_the_disclosure_key_keeps_it_until_its_client_subscribes_again(site):
    from dtsen.api.subscriptions import Subscription, secret_of, signing_secret
    from dtsen.notify.webhook import verify

    receiver, url, calls = start_webhook_receiver()
    callback, code = f"{url}/before-0031", "sub-made-before-the-keys-were-separated"
    # as migration 0031 leaves a subscription made earlier
    site.sql(
        "INSERT INTO api.subscription (code, client_id, program, callback_url, signed_with) "
        "VALUES (%s, 'bpjs', 'pbi_jk', %s, 'disclosure-key')",
        (code, callback),
    )
    try:
        keyless = site.notify(DTSEN_API_DISCLOSURE_KEY=None)  # a worker without it cannot sign that one
        assert keyless.returncode != 0 and not calls
        assert "bpjs for pbi_jk (DTSEN_API_DISCLOSURE_KEY not set)" in keyless.stderr
        assert "until its client subscribes again" in keyless.stderr
        done = site.notify()  # while the key is there, its subscriber is called as before
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        receiver.shutdown()
    (call,) = calls
    assert verify(secret_of(code, KEY.encode()), call["timestamp"], call["body"], call["signature"])
    # subscribing again (same URL and program) keeps the code and moves it to the signing key
    again = site.subscribe(callback)
    assert again["code"] == code
    assert site.sql("SELECT signed_with FROM api.subscription WHERE code = %s", (code,)) == [
        ("callback-key",)
    ]
    with pytest.MonkeyPatch.context() as worker:  # what a worker without the disclosure key signs with
        worker.delenv("DTSEN_API_DISCLOSURE_KEY", raising=False)
        worker.setenv("DTSEN_CALLBACK_SIGNING_KEY", SIGNING_KEY)
        signs = signing_secret(Subscription(code, "bpjs", "pbi_jk", callback, "callback-key"))
    assert signs == again["secret"].encode() != secret_of(code, KEY.encode())


def test_without_a_signing_key_the_api_subscribes_nobody(site):
    before = site.sql("SELECT count(*) FROM api.subscription")
    with running_registry_api(site.env | {"DTSEN_CALLBACK_SIGNING_KEY": ""}) as (base, _):
        keyless = Site(base, site.env, site.version, site.secret, site.work)
        with pytest.raises(AssertionError, match="503"):
            keyless.subscribe("http://127.0.0.1:9/never")
    assert site.sql("SELECT count(*) FROM api.subscription") == before


def test_check_deployment_requires_a_signing_key_of_its_own(tmp_path):
    import secrets

    from dtsen.deployment import SECRETS, insecure_settings

    strong = {name: secrets.token_hex(24) for name in SECRETS}
    strong["AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    strong["MAILPIT_UI_AUTH"] = "dataops:" + secrets.token_hex(16)
    strong["DTSEN_API_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()
    assert insecure_settings(strong) == []
    missing = {k: v for k, v in strong.items() if k != "DTSEN_CALLBACK_SIGNING_KEY"}
    assert any(p.startswith("DTSEN_CALLBACK_SIGNING_KEY") for p in insecure_settings(missing))
    same = strong | {"DTSEN_CALLBACK_SIGNING_KEY": strong["DTSEN_API_DISCLOSURE_KEY"]}
    assert insecure_settings(same) == [
        "DTSEN_CALLBACK_SIGNING_KEY is the same as DTSEN_API_DISCLOSURE_KEY: generate a key of its own"
    ]
