"""Callback URLs reach only where they may (issue 24, item 3): a registry API subscription to an
internal address, an IP address in disguise or a URL with a password is refused; each client holds
a bounded number of subscriptions; every POST checks its destination again right before it goes and
connects to the address it checked; and receivers that never answer neither fail nor hold up the
notify step: their deliveries are recorded as not delivered, with why, and `dtsen notify-retry` makes
them later.

Real processes (`dtsen api`, the notify step, `dtsen notify-retry`), real HTTP receivers on loopback
(allowed by DTSEN_CALLBACK_ALLOWLIST, as an administrator would allow an internal receiver), a real
PostgreSQL warehouse with a published sample version."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest

from dtsen.paths import PROJECT_ROOT
from dtsen.publish.version import publish_version
from dtsen.warehouse import engine
from dtsen_dev.local_airflow import free_port
from tests.factories import audited_sample_candidate, running_registry_api

KEY = "test-disclosure-key"
SIGNING_KEY = "test-callback-signing-key"
NOW = "2026-12-03T10:00:00+07:00"
CAP = 4


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps every POST (headers, body). While `silent` it reads
    the request and never answers (until the test ends); otherwise it answers 200."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, silent: bool = False) -> None:
        self.calls: list[dict] = []
        self.silent = silent
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's hook name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append({"headers": dict(self.headers), "body": json.loads(body)})
                if receiver.silent:
                    receiver.released.wait()
                    return
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class Listener:
    """A TCP port on 127.0.0.1 that counts the connections made to it and closes each at once: a
    service that must never be reached."""

    def __init__(self) -> None:
        self.connections = 0
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                listener.connections += 1

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Site:
    def __init__(self, base: str, env: dict, version: int, secrets: dict[str, str], receivers: dict) -> None:
        self.base, self.env, self.version, self.secrets, self.receivers = (
            base,
            env,
            version,
            secrets,
            receivers,
        )

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(engine.libpq_conninfo(self.env["DTSEN_DATABASE_URL"]), autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def subscribe(self, client: str, callback: str, program: str | None = None) -> httpx.Response:
        token = httpx.post(
            f"{self.base}/oauth2/client/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client,
                "client_secret": self.secrets[client],
            },
        ).json()["access_token"]
        criteria = {"reg_event_type": "dtsen:VersionPublished"} | (
            {"filter": {"program": program}} if program else {}
        )
        envelope = {
            "signature": "",
            "header": {
                "version": "1.0.0",
                "message_id": "msg-1",
                "message_ts": NOW,
                "action": "subscribe",
                "sender_id": client,
                "total_count": 1,
                "sender_uri": callback,
            },
            "message": {
                "transaction_id": "txn-1",
                "subscribe_request": [
                    {"reference_id": "s1", "timestamp": NOW, "subscribe_criteria": criteria}
                ],
            },
        }
        return httpx.post(
            f"{self.base}/registry/sync/subscribe",
            json=envelope,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], env=self.env | env, capture_output=True, text=True, timeout=600
        )


@pytest.fixture(scope="module")
def site(module_warehouse, tmp_path_factory):
    """A published sample version; `dtsen api` with clients `bpjs` (PBI JK) and `kemensos` (PKH, BPNT);
    receivers on loopback (one that answers, two that never do), each allowed by host and port."""
    from dtsen.api.clients import create_client

    root = tmp_path_factory.mktemp("publish")
    conn = module_warehouse
    version = audited_sample_candidate(conn, root)
    with conn.transaction():
        publish_version(conn, version, root)
    programs = {"pbi_jk", "pkh", "bpnt", "sekolah_rakyat"}
    with conn.transaction():
        secrets = {
            "bpjs": create_client(conn, "bpjs", "BPJS", ["pbi_jk"], ["nik", "desil"], 600, programs),
            "kemensos": create_client(
                conn, "kemensos", "Kemensos", ["pkh", "bpnt"], ["nik", "desil"], 600, programs
            ),
        }
    receivers = {"answers": Receiver(), "silent-1": Receiver(silent=True), "silent-2": Receiver(silent=True)}
    port = free_port()
    env = os.environ | {
        "DTSEN_PUBLISH_ROOT": str(root),
        "DTSEN_API_DISCLOSURE_KEY": KEY,
        "DTSEN_CALLBACK_SIGNING_KEY": SIGNING_KEY,
        "DTSEN_CALLBACK_ALLOWLIST": ",".join(f"127.0.0.1:{r.port}" for r in receivers.values()),
        "DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT": str(CAP),
    }
    work = tmp_path_factory.mktemp("api")
    try:
        with running_registry_api(env, work / "api.log", port) as (base, _):
            yield Site(base, env, version, secrets, receivers)
    finally:
        for receiver in receivers.values():
            receiver.close()


@pytest.fixture
def clean(site):
    """Every subscription a test made is cancelled after it, so the next test's announcement reaches
    only its own."""
    yield
    site.sql("UPDATE api.subscription SET cancelled_at = now() WHERE cancelled_at IS NULL")


def _warehouse_port(site: Site) -> int:
    from sqlalchemy.engine import make_url

    return make_url(site.env["DTSEN_DATABASE_URL"]).port or 5432


@pytest.mark.parametrize(
    "callback",
    [
        "http://127.0.0.1:{pg}/",  # the warehouse, plain http
        "https://127.0.0.1:{pg}/",
        "https://localhost:{pg}/",  # a name that resolves to loopback
        "https://[::1]/",
        "https://0x7f000001/",  # 127.0.0.1 in disguise
        "https://2130706433/",
        "https://0177.0.0.1/",
        "https://127.1/",
        "https://169.254.169.254/latest/meta-data/",  # the cloud's metadata service
        "https://[fd00:ec2::254]/",
        "https://[::ffff:127.0.0.1]/",  # IPv4-mapped IPv6
        "https://[::ffff:7f00:1]/",
        "https://10.1.2.3/",
        "https://192.168.0.1/",
        "https://100.64.0.1/",  # shared (CGNAT)
        "https://[fe80::1]/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://[2002:7f00:1::]/",  # 6to4 around 127.0.0.1
        "http://receiver.example/dtsen",  # plain http to a host not allowed
        "https://user:pw@receiver.example/dtsen",  # a password in the URL
        "http://user:pw@127.0.0.1:{answers}/dtsen",  # ... even to an allowed receiver
    ],
)
def test_a_subscription_to_an_internal_or_disguised_address_is_refused(site, clean, callback):
    callback = callback.format(pg=_warehouse_port(site), answers=site.receivers["answers"].port)
    answer = site.subscribe("bpjs", callback)
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"][0]["code"] == "err.sender_uri.invalid"
    assert site.sql("SELECT count(*) FROM api.subscription WHERE callback_url = %s", (callback,)) == [(0,)]


def test_a_client_over_its_subscription_cap_is_refused_whole(site, clean):
    base = site.receivers["answers"].url
    for n in range(CAP // 2):  # kemensos has two programs: each callback is two subscriptions
        assert site.subscribe("kemensos", f"{base}/cb{n}").status_code == 200
    assert site.subscribe("kemensos", f"{base}/cb0").status_code == 200  # the same again adds nothing
    over = site.subscribe("kemensos", f"{base}/one-too-many")
    assert over.status_code == 403, over.text
    assert over.json()["errors"][0]["code"] == "err.subscription.limit"
    live = "SELECT count(*) FROM api.subscription WHERE client_id = 'kemensos' AND cancelled_at IS NULL"
    assert site.sql(live) == [(CAP,)]
    # one program under the cap fits, but a request that would go over adds nothing
    site.sql(
        "UPDATE api.subscription SET cancelled_at = now() WHERE callback_url = %s AND program = 'pkh'",
        (f"{base}/cb0",),
    )
    assert site.subscribe("kemensos", f"{base}/two", program="pkh").status_code == 200
    assert site.subscribe("kemensos", f"{base}/three").status_code == 403
    assert site.sql(live) == [(CAP,)]
    assert site.subscribe("bpjs", f"{base}/bpjs").status_code == 200  # the cap is per client


def test_receivers_that_never_answer_neither_fail_nor_hold_up_the_notify_step_and_are_retried(site, clean):
    answers, silent = site.receivers["answers"], [site.receivers["silent-1"], site.receivers["silent-2"]]
    for receiver in (answers, *silent):
        assert site.subscribe("bpjs", f"{receiver.url}/dtsen").status_code == 200
    topic = f"version:{site.version}:program:pbi_jk"
    step = (
        "import json; from dtsen.round import NOTIFY_PROGRAMS, RoundContext; "
        f"print(json.dumps(NOTIFY_PROGRAMS.run(RoundContext.create('', version={site.version}))))"
    )
    started = time.monotonic()
    done = site.run("-c", step, DTSEN_WEBHOOK_TIMEOUT_SECONDS="1")
    took = time.monotonic() - started
    print(f"notify step with two receivers that never answer: {took:.1f} s")  # measured, not asserted
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["webhooks_delivered"] == 1 and len(answers.calls) == 1
    assert len(summary["webhooks_undelivered"]) == 2
    assert all("no answer within 1 s" in line for line in summary["webhooks_undelivered"])
    assert [len(r.calls) for r in silent] == [1, 1]  # each was tried once, not again and again
    pending = site.sql(
        "SELECT status, last_error, next_attempt_at > now(), sending_since IS NOT NULL FROM publish.notification "
        "WHERE topic = %s AND channel = 'webhook' AND target LIKE %s ORDER BY target",
        (topic, "http://127.0.0.1:%"),
    )
    states = {row for row in pending if row[0] != "200"}
    assert states == {("PENDING", "no answer within 1 s", True, True)} and len(pending) == 3

    for receiver in silent:  # they answer again; their next attempt falls due
        receiver.silent = False
    site.sql(
        "UPDATE publish.notification SET next_attempt_at = now() WHERE topic = %s AND status = 'PENDING'",
        (topic,),
    )
    retried = site.run("-m", "dtsen", "notify-retry", DTSEN_WEBHOOK_TIMEOUT_SECONDS="5")
    assert retried.returncode == 0, retried.stdout + retried.stderr[-3000:]
    assert "2 due, 2 delivered now" in retried.stdout
    assert [len(r.calls) for r in silent] == [2, 2] and len(answers.calls) == 1
    for receiver in silent:  # the same delivery, said to be a possible repeat: the first may have arrived
        first, again = receiver.calls
        assert (
            again["body"]["delivery_id"] == first["body"]["delivery_id"]
            and again["body"]["redelivery"] is True
        )
    rows = site.sql(
        "SELECT status, attempts, last_error, next_attempt_at FROM publish.notification "
        "WHERE topic = %s AND channel = 'webhook' AND target LIKE %s",
        (topic, "http://127.0.0.1:%"),
    )
    assert sorted(rows) == [("200", 1, None, None), ("200", 2, None, None), ("200", 2, None, None)]
    assert site.run("-m", "dtsen", "notify-retry").stdout.startswith("0 due")  # nothing is due any more


@pytest.fixture
def resolver(monkeypatch):
    """socket.getaddrinfo with names of the test's own: name -> the list of addresses it answers,
    in turn (the last one from then on), as a DNS server under an attacker's control would."""
    real = socket.getaddrinfo
    answers: dict[str, list[str]] = {}
    asked: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in answers:
            return real(host, port, *args, **kwargs)
        asked.append(name)
        turn = answers[name]
        address = turn.pop(0) if len(turn) > 1 else turn[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, int(port or 0)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, asked


def test_every_post_checks_its_destination_again_just_before_it_goes(
    site, clean, resolver, monkeypatch, tmp_path
):
    """A name that resolved to a public address when it was subscribed, and resolves to loopback when
    the version is announced, is not called; nor is a program webhook to an internal service."""
    from dtsen.api.subscriptions import subscribe
    from dtsen.notify.deliver import notify_programs
    from dtsen.notify.subscribers import parse_subscribers

    answers, _ = resolver
    internal = Listener()
    try:
        answers["hooks.program-team.example"] = ["93.184.216.34"]  # public when subscribed
        callback = f"https://hooks.program-team.example:{internal.port}/dtsen"
        monkeypatch.setenv("DTSEN_CALLBACK_SIGNING_KEY", SIGNING_KEY)
        monkeypatch.setenv("DTSEN_WEBHOOK_TIMEOUT_SECONDS", "2")
        with psycopg.connect(engine.libpq_conninfo(site.env["DTSEN_DATABASE_URL"])) as conn:
            with conn.transaction():
                subscribe(conn, "bpjs", ["pbi_jk"], callback)
            answers["hooks.program-team.example"] = ["127.0.0.1"]  # ... and loopback when announced
            monkeypatch.setenv("DTSEN_TEST_HOOK_SECRET", "a-secret")
            subscribers = parse_subscribers(
                {
                    "data_ops": {"emails": []},
                    "programs": {
                        "pbi_jk": {
                            "emails": [],
                            "webhooks": [
                                {
                                    "url": f"http://127.0.0.1:{internal.port}/h",
                                    "secret_env": "DTSEN_TEST_HOOK_SECRET",
                                }
                            ],
                        }
                    },
                }
            )
            summary = notify_programs(conn, site.version, subscribers, lambda _: None)
        assert internal.connections == 0
        assert summary["webhooks_delivered"] == 0 and len(summary["webhooks_undelivered"]) == 2
        errors = dict(
            site.sql(
                "SELECT target, last_error FROM publish.notification WHERE topic = %s AND channel = 'webhook' "
                "AND target LIKE %s",
                (f"version:{site.version}:program:pbi_jk", f"%:{internal.port}/%"),
            )
        )
        assert "resolves to a loopback address" in errors[next(t for t in errors if "program-team" in t)]
        assert "must be an https URL" in errors[f"http://127.0.0.1:{internal.port}/h"]
    finally:
        internal.close()


def test_a_post_connects_to_the_address_it_checked_with_the_name_in_the_host_header(resolver):
    """DNS rebinding between the check and the connection: the name answers 127.0.0.1 when checked
    and 127.0.0.2 from then on; the POST still goes to 127.0.0.1, with the name as Host."""
    from dtsen.notify.egress import Allowlist
    from dtsen.notify.webhook import post_signed

    checked = Receiver("127.0.0.1")
    other = Receiver("127.0.0.2", port=checked.port)
    answers, asked = resolver
    answers["receiver.internal"] = ["127.0.0.1", "127.0.0.2"]
    try:
        url = f"http://receiver.internal:{checked.port}/dtsen"
        delivery = post_signed(
            url,
            {"v": 1},
            b"s",
            delivery_id="d-1",
            attempts=1,
            timeout=5,
            allowlist=Allowlist.parse("receiver.internal"),
        )
        assert delivery.status == 200 and asked == ["receiver.internal"]  # resolved once: when checked
        assert len(checked.calls) == 1 and other.calls == []
        assert checked.calls[0]["headers"]["Host"] == f"receiver.internal:{checked.port}"
    finally:
        checked.close()
        other.close()


def test_the_allowlist_is_a_setting_an_administrator_writes():
    from dtsen.notify.egress import Allowlist, RefusedDestination, check_url

    allow = Allowlist.parse("receiver.internal, 127.0.0.1:8099, http://10.0.0.7:8080/dtsen/")
    assert check_url("http://receiver.internal/x", allow).allowlisted
    assert check_url("http://127.0.0.1:8099/x", allow).allowlisted
    assert check_url("http://10.0.0.7:8080/dtsen/hook", allow).allowlisted
    for refused in ("http://127.0.0.1:8100/x", "http://10.0.0.7:8080/other", "http://10.0.0.7:8080/dtsenx"):
        with pytest.raises(RefusedDestination):
            check_url(refused, allow)
    bad = subprocess.run(
        [sys.executable, "-m", "dtsen", "versions"],
        env=os.environ | {"DTSEN_CALLBACK_ALLOWLIST": "user:pw@host"},
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert bad.returncode == 5 and "DTSEN_CALLBACK_ALLOWLIST" in bad.stderr  # refused, named
