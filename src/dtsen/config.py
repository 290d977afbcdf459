"""Every setting the project reads from the environment, declared once, with its default and meaning.

`SETTINGS` is the declaration (the README's configuration table is checked against it by a test);
`settings()` reads the environment now (not at import), so tests and command-line flags can change
it. A value that cannot be read is a DataError naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dtsen.errors import DataError
from dtsen.notify.egress import Allowlist
from dtsen.paths import PROJECT_ROOT

DEFAULT_RANKING_MODEL = PROJECT_ROOT / "config" / "ranking" / "pmt-v1.json"
DEFAULT_PROGRAMS = PROJECT_ROOT / "config" / "programs.json"
DEFAULT_AUDIT_CONFIG = PROJECT_ROOT / "config" / "audit.json"
DEFAULT_INTEGRITY_CONFIG = PROJECT_ROOT / "config" / "integrity.json"
DEFAULT_CASES_CONFIG = PROJECT_ROOT / "config" / "cases.json"
DEFAULT_SUBSCRIBERS = PROJECT_ROOT / "config" / "subscribers.json"


@dataclass(frozen=True)
class Settings:
    database_url: str | None  # the round's login; None = the project's private local cluster
    owner_database_url: str | None  # the owner's login (migrations, administration); None: database_url
    api_database_url: str | None  # the registry API's login; None: database_url
    home: Path  # project-local state: private cluster, default landing and publish roots
    landing_root: Path
    publish_root: Path
    raw_root: Path  # kept copies of every delivered file, content-addressed by sha256
    local_pg_port: int
    pg_bindir: Path | None  # None: the newest installed PostgreSQL
    quality_gate_threshold: float
    ranking_model_path: Path  # the PMT model file (versioned; its hash is recorded per version)
    model_training_months: int  # BPS measurements older than this are left out of a model's fit
    model_cv_folds: int  # cross-validation folds (by village) of a model's fit
    model_regions: tuple[str, ...]  # regional terms a fitted model has: province, urban, regency
    programs_path: Path  # program eligibility rules
    audit_config_path: Path  # the candidate audit's thresholds
    integrity_config_path: Path  # split-surge thresholds and implausible-recipient rules
    cases_config_path: Path  # verification cases: origins, priorities, due dates, the overdue alert
    subscribers_path: Path  # who is notified of what
    round_schedule: str  # cron, Asia/Jakarta
    max_submission_bytes: int  # a submission's data files together; a larger one is refused unread
    feedback_max_rows_per_reason: int  # ditolak.csv lists at most this many rows per reason (all are counted)
    staging_keep_rounds: int  # staging of the newest N merged rounds and N Dukcapil snapshots is kept
    dukcapil_max_removed_share: float  # an extract removing more of the reference (or a regency) is held
    dukcapil_regency_min_removed: int  # a regency's share counts from this many removed NIKs
    publish_streams: int  # a version's files are written by this many connections at once
    write_sessions: int  # sessions writing a candidate's spans, computing its audit, building the merge's scratch
    approval_timeout_hours: float  # a blocked candidate's approval task waits this long, then rejects
    approvers: tuple[str, ...]  # Airflow user ids who may approve a blocked candidate; empty: nobody
    cockpit_database_url: str | None  # the cockpit's (read-only) warehouse login; None: database_url
    api_port: int  # `dtsen api` listens here
    api_token_minutes: float  # a bearer token's lifetime
    api_max_page_size: int  # the most recipients one search page may carry
    api_disclosure_key: (
        str | None
    )  # keys the persons' hashes in the disclosure log; the API refuses to start without
    api_signing_key: str | None  # the registry API's Ed25519 private key (base64 seed): signs its answers
    api_require_signed_requests: bool  # every client must sign its envelopes, keyless ones too
    api_signature_max_age_seconds: int  # a signature is valid at most this long after it is created
    callback_signing_key: str | None  # derives subscribers' callback secrets (API and notify step)
    callback_allowlist: Allowlist  # callback/webhook destinations allowed although http or not public
    max_subscriptions_per_client: int  # live subscriptions one registry API client may hold
    webhook_timeout_seconds: float  # the most one webhook POST may take, DNS to the answer's status
    api_callback_retry_seconds: float  # an undelivered async API answer is tried again after this, doubling
    api_callback_attempts: int  # ... this many attempts in all, then given up
    smtp_url: str | None  # where emails go outside Airflow; None: the outbox folder
    outbox: Path  # emails written as .eml files when no SMTP server is configured
    allow_insecure_defaults: bool  # `dtsen check-deployment` lets placeholder secrets through (trials)
    api_max_items: int  # the most items (search_request, subscribe_request) one API envelope may carry
    api_max_list_length: int  # the most entries of a list inside an API request (predicates, `in`, codes)
    api_max_body_bytes: int  # a larger API request body is refused (413) before or while it is read
    api_token_tries_per_minute: int  # failed token requests one source address may make a minute


def _path(default: Callable[[dict], Path]) -> Callable[[str | None, dict], Path]:
    return lambda raw, known: Path(raw).expanduser().resolve() if raw else default(known)


def _number(
    kind: type, low: float | None = None, high: float | None = None
) -> Callable[[str | None, dict], object]:
    def parse(raw: str | None, _: dict) -> object:
        value = kind(raw)
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError(f"{value} is outside {low}..{high}")
        return value

    return parse


def _flag(raw: str | None) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("it is 0 or 1")
    return raw == "1"


@dataclass(frozen=True)
class Setting:
    env: str
    field: str
    default: str | None  # as it would be written in the environment; None = unset
    shown: str  # the default as the README's table shows it
    meaning: str
    parse: Callable[[str | None, dict], object]


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DTSEN_DATABASE_URL",
        "database_url",
        None,
        "unset: the private cluster",
        "the warehouse login of the round and of every `dtsen` command not named below, e.g. "
        "`postgresql+psycopg://user:pw@host:5432/dtsen` (plain `postgresql://` works too); in a deployment a "
        "login of the role `dtsen_round` (see Least privilege)",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_OWNER_DATABASE_URL",
        "owner_database_url",
        None,
        "unset: `DTSEN_DATABASE_URL`",
        "the warehouse owner's login, used only by `dtsen db migrate` (migrations, and the components' "
        "logins it makes from the URLs below) and the administration commands `dtsen api-client` and "
        "`dtsen disclosures`",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_API_DATABASE_URL",
        "api_database_url",
        None,
        "unset: `DTSEN_DATABASE_URL`",
        "the warehouse login of the registry API (`dtsen api`): a login of the role `dtsen_api`, which reads "
        "the published versions and may only append to the disclosure log",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_HOME",
        "home",
        None,
        "`.dtsen`",
        "project-local state: private cluster, default landing/publish/raw roots, outbox",
        _path(lambda _: PROJECT_ROOT / ".dtsen"),
    ),
    Setting(
        "DTSEN_LANDING_ROOT",
        "landing_root",
        None,
        "`.dtsen/landing`",
        "landing zone root (contract section 1)",
        _path(lambda k: k["home"] / "landing"),
    ),
    Setting(
        "DTSEN_PUBLISH_ROOT",
        "publish_root",
        None,
        "`.dtsen/publish`",
        "where feedback and published versions are written",
        _path(lambda k: k["home"] / "publish"),
    ),
    Setting(
        "DTSEN_RAW_ROOT",
        "raw_root",
        None,
        "`.dtsen/raw`",
        "the raw store: every delivered file, kept byte for byte by its sha256",
        _path(lambda k: k["home"] / "raw"),
    ),
    Setting(
        "DTSEN_LOCAL_PG_PORT",
        "local_pg_port",
        "54329",
        "`54329`",
        "port of the private cluster (127.0.0.1 only)",
        _number(int, 1, 65535),
    ),
    Setting(
        "DTSEN_PG_BINDIR",
        "pg_bindir",
        None,
        "newest `/usr/lib/postgresql/*/bin`",
        "where `initdb`/`pg_ctl` are",
        lambda raw, _: Path(raw) if raw else None,
    ),
    Setting(
        "DTSEN_QUALITY_GATE_THRESHOLD",
        "quality_gate_threshold",
        "0.20",
        "`0.20`",
        "share of failed rows above which a whole submission is rejected (the trigger form's empty value)",
        _number(float, 0.0, 1.0),
    ),
    Setting(
        "DTSEN_RANKING_MODEL",
        "ranking_model_path",
        None,
        "`config/ranking/pmt-v1.json`",
        "the PMT ranking model a warehouse starts with: the first candidate registers it as model 1, "
        "adopted by the system; after a person adopts a model (`dtsen model adopt`), the adopted one "
        "ranks and this file is used again only once adopted (`dtsen model adopt --file`). Every "
        "version names its model and sha256",
        _path(lambda _: DEFAULT_RANKING_MODEL),
    ),
    Setting(
        "DTSEN_MODEL_TRAINING_MONTHS",
        "model_training_months",
        "36",
        "36",
        "`dtsen model fit` learns from each family's latest BPS measurement of the last this many months "
        "(before the current version's reference date); older ones are left out",
        _number(int, 1, 240),
    ),
    Setting(
        "DTSEN_MODEL_CV_FOLDS",
        "model_cv_folds",
        "5",
        "5",
        "folds of the cross-validation (grouped by village) that chooses a fitted model's penalty and "
        "measures its targeting errors",
        _number(int, 2, 20),
    ),
    Setting(
        "DTSEN_MODEL_REGIONS",
        "model_regions",
        "province,urban",
        "`province,urban`",
        "the regional terms a fitted model adds to the proxies, comma-separated: `province`, `urban` "
        "(kelurahan or desa, from the village code), `regency`; each shrunk toward the national model",
        lambda raw, _: tuple(r.strip() for r in (raw or "").split(",") if r.strip()),
    ),
    Setting(
        "DTSEN_PROGRAMS",
        "programs_path",
        None,
        "`config/programs.json`",
        "program eligibility rules",
        _path(lambda _: DEFAULT_PROGRAMS),
    ),
    Setting(
        "DTSEN_AUDIT_CONFIG",
        "audit_config_path",
        None,
        "`config/audit.json`",
        "the candidate audit's thresholds (desil-share tolerance, drift per regency and program)",
        _path(lambda _: DEFAULT_AUDIT_CONFIG),
    ),
    Setting(
        "DTSEN_INTEGRITY_CONFIG",
        "integrity_config_path",
        None,
        "`config/integrity.json`",
        "registry integrity checks: split-surge thresholds per village and account, implausible-recipient rules",
        _path(lambda _: DEFAULT_INTEGRITY_CONFIG),
    ),
    Setting(
        "DTSEN_CASES_CONFIG",
        "cases_config_path",
        None,
        "`config/cases.json`",
        "verification cases: which origins open a case, each origin's priority and days to a visit, when "
        "a family counts as stale, the overdue share that alerts data ops",
        _path(lambda _: DEFAULT_CASES_CONFIG),
    ),
    Setting(
        "DTSEN_SUBSCRIBERS",
        "subscribers_path",
        None,
        "`config/subscribers.json`",
        "who is notified: program owners (email, webhooks), regions, data ops",
        _path(lambda _: DEFAULT_SUBSCRIBERS),
    ),
    Setting(
        "DTSEN_ROUND_SCHEDULE",
        "round_schedule",
        "0 2 5 1,4,7,10 *",
        "`0 2 5 1,4,7,10 *`",
        "when `dtsen_update_round` runs by itself (cron, Asia/Jakarta), for the quarter that just ended",
        lambda raw, _: raw,
    ),
    Setting(
        "DTSEN_MAX_SUBMISSION_BYTES",
        "max_submission_bytes",
        str(1 << 30),
        "`1073741824` (1 GiB)",
        "a submission's data files together; a larger one is refused (FILE_UNREADABLE) without being copied or staged",
        _number(int, 1),
    ),
    Setting(
        "DTSEN_FEEDBACK_MAX_ROWS_PER_REASON",
        "feedback_max_rows_per_reason",
        "10000",
        "`10000`",
        "`ditolak.csv` lists at most this many rows per reason; `ringkasan.json` still counts every row",
        _number(int, 1),
    ),
    Setting(
        "DTSEN_STAGING_KEEP_ROUNDS",
        "staging_keep_rounds",
        "2",
        "`2`",
        "the staged rows of the newest N merged rounds and of the newest N Dukcapil snapshots are kept; "
        "older staging partitions are dropped when a round opens (the raw files stay in the raw store)",
        _number(int, 1),
    ),
    Setting(
        "DTSEN_DUKCAPIL_MAX_REMOVED_SHARE",
        "dukcapil_max_removed_share",
        "0.005",
        "`0.005` (0.5%)",
        "a Dukcapil extract that would remove more than this share of the current reference's NIKs, or of one "
        "regency's, is held: nothing of it is applied and the round waits for a person's decision",
        _number(float, 0.0, 1.0),
    ),
    Setting(
        "DTSEN_DUKCAPIL_REGENCY_MIN_REMOVED",
        "dukcapil_regency_min_removed",
        "20",
        "`20`",
        "a regency's removed share is judged only from this many removed NIKs on (a small regency's few "
        "removals are not a broken extract); the share of the whole reference is always judged",
        _number(int, 1),
    ),
    Setting(
        "DTSEN_PUBLISH_STREAMS",
        "publish_streams",
        None,
        "unset: one per CPU core",
        "how many of a version's files are written at once, each by its own warehouse connection reading "
        "the same snapshot, each in bounded memory",
        lambda raw, _: _number(int, 1, 64)(raw, _) if raw else max(1, os.cpu_count() or 1),
    ),
    Setting(
        "DTSEN_WRITE_SESSIONS",
        "write_sessions",
        None,
        "unset: one per CPU core",
        "how many warehouse sessions write a candidate version's spans at once, each a disjoint share by "
        "key, committed together by two-phase commit (the server needs max_prepared_transactions at least "
        "this; with fewer, or 1, one session writes them); as many compute the candidate's audit, each "
        "a share of its members and families, and the merge's per-person scratch, each a share of the NIKs",
        lambda raw, _: _number(int, 1, 64)(raw, _) if raw else max(1, os.cpu_count() or 1),
    ),
    Setting(
        "DTSEN_APPROVAL_TIMEOUT_HOURS",
        "approval_timeout_hours",
        "168",
        "168 (7 days)",
        "how long the approval task of a candidate blocked on drift or desil shares waits for a person; "
        "no answer by then counts as a rejection (recorded as TIMED_OUT) and the current version stays current",
        _number(float, 0.001, 24 * 90),
    ),
    Setting(
        "DTSEN_APPROVERS",
        "approvers",
        None,
        "unset: nobody (approvals only with `dtsen approve`)",
        "comma-separated Airflow user ids (the username with the SimpleAuthManager) who may approve a blocked "
        "candidate: the approval task is assigned to them and accepts an answer from no one else, and "
        "`approve_drift` on the trigger form is taken only from a run they triggered. Unset, a candidate that "
        "waits for approval fails the approval task (its message says so) and stays blocked until `dtsen "
        "approve`; set it and clear the task to ask again",
        lambda raw, _: tuple(dict.fromkeys(u.strip() for u in (raw or "").split(",") if u.strip())),
    ),
    Setting(
        "DTSEN_COCKPIT_DATABASE_URL",
        "cockpit_database_url",
        None,
        "unset: `DTSEN_DATABASE_URL`",
        "the warehouse login of the data-ops cockpit (Airflow UI plugin): a login of the role `dtsen_cockpit`, "
        "which reads only the summaries the cockpit shows (every cockpit session is read-only either way)",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_API_PORT",
        "api_port",
        "8090",
        "8090",
        "where `dtsen api` (the registry API for program teams) listens",
        _number(int, 1, 65535),
    ),
    Setting(
        "DTSEN_API_TOKEN_MINUTES",
        "api_token_minutes",
        "60",
        "60",
        "how long a bearer token of the registry API lives (OAuth2 client credentials; no refresh tokens)",
        _number(float, 0.01, 24 * 60),
    ),
    Setting(
        "DTSEN_API_MAX_PAGE_SIZE",
        "api_max_page_size",
        "1000",
        "1000",
        "the most recipients one page of a registry API search carries; a search item asking for a larger "
        "page_size is rejected alone (`rjct.pagination.invalid`), the request's other items still answered",
        _number(int, 1, 100_000),
    ),
    Setting(
        "DTSEN_API_TOKEN_TRIES_PER_MINUTE",
        "api_token_tries_per_minute",
        "10",
        "10",
        "failed token requests one source address may make a minute on the registry API's token endpoint "
        "(a token issued gives its try back); more get HTTP 429 with `Retry-After`. Behind a proxy every "
        "client shares the proxy's address",
        _number(int, 1, 100_000),
    ),
    Setting(
        "DTSEN_API_MAX_ITEMS",
        "api_max_items",
        "10",
        "10",
        "the most items (`search_request`, `subscribe_request`) one registry API envelope may carry; each "
        "search item counts as one request against the client's rate",
        _number(int, 1, 1000),
    ),
    Setting(
        "DTSEN_API_MAX_LIST_LENGTH",
        "api_max_list_length",
        "100",
        "100",
        "the most entries of a list inside a registry API request (a predicate's expressions, an `in` list, "
        "`subscription_codes`)",
        _number(int, 1, 100_000),
    ),
    Setting(
        "DTSEN_API_MAX_BODY_BYTES",
        "api_max_body_bytes",
        str(1 << 20),
        "`1048576` (1 MiB)",
        "a registry API request body larger than this is refused (HTTP 413) by its Content-Length before it "
        "is read, or as soon as a chunked body grows past it",
        _number(int, 1024, 1 << 30),
    ),
    Setting(
        "DTSEN_API_DISCLOSURE_KEY",
        "api_disclosure_key",
        None,
        "unset: the API refuses to start",
        "secret key of the disclosure log: each disclosed person is kept as an HMAC of the NIK under it "
        "(keep it as safe as the registry; losing it loses `dtsen disclosures --nik`)",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_API_SIGNING_KEY",
        "api_signing_key",
        None,
        "unset: the API refuses to start",
        "the registry API's Ed25519 private key, the base64 of its raw 32-byte seed (`dtsen api-signing-key "
        "generate` makes one): it signs every DCI answer (`signature`, docs/registry-api.md); program teams "
        "verify with its public key (`dtsen api-signing-key show`, `GET /registry/signing-key`). A key of its "
        "own, in the API's container only",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_API_REQUIRE_SIGNED_REQUESTS",
        "api_require_signed_requests",
        "0",
        "`0`",
        "`1`: every registry API client must sign its envelopes (an unsigned one is refused, HTTP 401 "
        "`err.signature.missing`); `0`: only the clients with a registered public key must (`dtsen api-client "
        "set-key`), and a keyless client's signature is refused as one that cannot be verified",
        lambda raw, _: _flag(raw),
    ),
    Setting(
        "DTSEN_API_SIGNATURE_MAX_AGE_SECONDS",
        "api_signature_max_age_seconds",
        "300",
        "300",
        "the longest a signed registry API envelope is valid: a request whose signature's `expires` is more "
        "than this after its `created` is refused; the API's own answers expire this long after they are signed",
        _number(int, 10, 86_400),
    ),
    Setting(
        "DTSEN_CALLBACK_SIGNING_KEY",
        "callback_signing_key",
        None,
        "unset: no subscriptions",
        "secret key from which each registry API subscription's callback secret is derived: the API hands "
        "the secret to the client when it subscribes, `dtsen_notify_programs` and `dtsen notify-retry` "
        "sign the callbacks with it. Not the disclosure key: the workers need this one only. Unset, the "
        "API refuses subscriptions (HTTP 503) and the notify step fails naming it when subscriptions exist",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_CALLBACK_ALLOWLIST",
        "callback_allowlist",
        None,
        "unset: none",
        "comma-separated hosts (`receiver.internal`, `127.0.0.1`), `host:port` pairs and URL prefixes "
        "(`http://10.0.0.7:8080/dtsen/`) that registry API callbacks and program webhooks may reach although "
        "they are http or not public (loopback, private, link-local); everything else must be https to a "
        "public address (see Callback URLs). A user name or password in a URL is refused even here",
        lambda raw, _: Allowlist.parse(raw),
    ),
    Setting(
        "DTSEN_MAX_SUBSCRIPTIONS_PER_CLIENT",
        "max_subscriptions_per_client",
        "20",
        "20",
        "the most live subscriptions one registry API client may hold (one per program and callback URL); "
        "a subscribe request that would go over it is refused whole (HTTP 403, `err.subscription.limit`)",
        _number(int, 1, 10_000),
    ),
    Setting(
        "DTSEN_WEBHOOK_TIMEOUT_SECONDS",
        "webhook_timeout_seconds",
        "10",
        "10",
        "the most one webhook or callback POST may take, resolving the host to the answer's status line; "
        "a receiver slower than that is recorded as not delivered and retried later (`dtsen notify-retry`)",
        _number(float, 0.1, 300),
    ),
    Setting(
        "DTSEN_API_CALLBACK_RETRY_SECONDS",
        "api_callback_retry_seconds",
        "30",
        "30",
        "the answer of an asynchronous registry API request (`/registry/search`, `subscribe`, `unsubscribe`, "
        "`txn/status`) that did not reach the client's callback is POSTed again after this many seconds, "
        "the wait doubling after each attempt (by the API process, in the background)",
        _number(float, 0.1, 86_400),
    ),
    Setting(
        "DTSEN_API_CALLBACK_ATTEMPTS",
        "api_callback_attempts",
        "8",
        "8",
        "how many times the answer of an asynchronous registry API request is POSTed before it is given up "
        "(`txn/status` still tells its status; a refused callback or a 4xx answer ends it at once)",
        _number(int, 1, 100),
    ),
    Setting(
        "DTSEN_SMTP_URL",
        "smtp_url",
        None,
        "unset: the outbox",
        "where emails go when Airflow does not send them (`smtp://host:port`, `?starttls=1`, `smtps://`); "
        "unset, they are written to `DTSEN_OUTBOX`",
        lambda raw, _: raw or None,
    ),
    Setting(
        "DTSEN_OUTBOX",
        "outbox",
        None,
        "`.dtsen/outbox`",
        "where emails are written as .eml files (named by delivery id) when `DTSEN_SMTP_URL` is unset",
        _path(lambda k: k["home"] / "outbox"),
    ),
    Setting(
        "DTSEN_ALLOW_INSECURE_DEFAULTS",
        "allow_insecure_defaults",
        "0",
        "`0`",
        "`1` lets `dtsen check-deployment` pass placeholder secrets (a trial on a closed machine only)",
        lambda raw, _: raw == "1",
    ),
)


def settings() -> Settings:
    """Read the environment now (not at import), so tests and CLI flags can change it."""
    known: dict = {}
    for setting in SETTINGS:
        raw = os.environ.get(setting.env) or setting.default
        try:
            known[setting.field] = setting.parse(raw, known)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{setting.env} has a value that cannot be used ({exc}); see the README's settings"
            ) from exc
    return Settings(**known)
