"""`dtsen api`, `dtsen api-client ...`, `dtsen api-signing-key ...` and `dtsen disclosures ...` (added to
the `dtsen` command)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys

from dtsen.config import settings


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from dtsen.api.app import create_app

    port = args.port or settings().api_port
    tls = _tls(args)
    if args.workers > 1:  # separate processes (each with its own connection pool and rate counters)
        create_app()  # refuse to start (a missing key, a warehouse it cannot reach) before forking
        uvicorn.run(
            "dtsen.api.app:create_app", factory=True, host=args.host, port=port, workers=args.workers, **tls
        )
    else:
        uvicorn.run(create_app(), host=args.host, port=port, log_level="info", **tls)
    return 0


def _tls(args: argparse.Namespace) -> dict[str, str]:
    """uvicorn's TLS options; refuses plain HTTP on an address other hosts reach, unless a TLS proxy
    in front is declared: bearer tokens and recipients must not cross a network in clear."""
    import ipaddress
    from pathlib import Path

    from dtsen.errors import DataError

    if bool(args.tls_cert) != bool(args.tls_key):
        raise DataError("give both --tls-cert and --tls-key, or neither")
    for flag, path in (("--tls-cert", args.tls_cert), ("--tls-key", args.tls_key)):
        if path and not Path(path).is_file():
            raise DataError(f"{flag} {path}: no such file")
    if args.tls_cert:
        return {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not (loopback or args.behind_tls_proxy):
        raise DataError(
            f"refusing plain HTTP on {args.host}: give --tls-cert and --tls-key, or --behind-tls-proxy when "
            "a proxy on a private network terminates TLS in front of this server"
        )
    return {}


def _known_programs() -> set[str]:
    from dtsen.programs import load_programs

    return {p.id for p in load_programs().programs}


def cmd_client(args: argparse.Namespace) -> int:
    from dtsen.api import clients
    from dtsen.warehouse import engine

    with engine.connect("owner") as conn, conn.transaction():  # administration: the owner's login
        if args.client_command == "create":
            secret = clients.create_client(
                conn,
                args.id,
                args.name,
                [p.strip() for p in args.programs.split(",") if p.strip()],
                [f.strip() for f in args.fields.split(",") if f.strip()],
                args.rate,
                _known_programs(),
                args.public_key,
                [r.strip() for r in (args.case_regions or "").split(",") if r.strip()],
            )
        elif args.client_command == "rotate":
            secret = clients.rotate_secret(conn, args.id)
        elif args.client_command == "set-key":
            clients.set_signing_key(conn, args.id, None if args.remove else args.public_key)
            if args.remove:
                print(f"client {args.id}: no signing key registered; its requests are taken unsigned")
            else:
                print(f"client {args.id}: requests must be signed with key id {_key_id(args.public_key)}")
            return 0
        elif args.client_command == "revoke":
            clients.revoke_client(conn, args.id)
            print(f"client {args.id} revoked: its tokens no longer work")
            return 0
        else:
            for c in clients.list_clients(conn):
                state = f"revoked {c['revoked_at']:%Y-%m-%d}" if c["revoked_at"] else "active"
                key = _key_id(c["signing_public_key"]) if c["signing_public_key"] else "none"
                print(
                    f"{c['client_id']:<24} {state:<18} programs {','.join(c['programs']) or '-':<24} "
                    f"cases {','.join(c['case_regions']) or '-'}  "
                    f"fields {','.join(c['fields'])}  {c['rate_per_minute']}/min  signing key {key}  "
                    f"({c['name']})"
                )
            return 0
    print(f"client_id     {args.id}")
    print(f"client_secret {secret}")
    print("The secret is shown once and stored only as a hash: hand it to the program team now.")
    return 0


def _key_id(public_key: str) -> str:
    from dtsen.api import signing

    return signing.key_id(signing.public_key(public_key))


def cmd_signing_key(args: argparse.Namespace) -> int:
    """The registry's own signing key: `show` its public half (for program teams), or `generate` a new
    private key for the secrets store (printed once, kept nowhere)."""
    from dtsen.api import signing

    if args.key_command == "generate":
        private = signing.generate_private_key_text()
        signer = signing.Signer(private, 1)
        print(f"DTSEN_API_SIGNING_KEY={private}")
        print(f"kid        {signer.kid}")
        print(f"public_key {signer.public_key_text()}")
        print(
            "The private key is shown once and kept nowhere: put it in the API's secrets (.env) now. Program "
            "teams verify answers with the public key (GET /registry/signing-key, `dtsen api-signing-key show`)."
        )
        return 0
    signer = signing.Signer(settings().api_signing_key, 1)
    print(f"kid        {signer.kid}")
    print(f"algorithm  {signing.ALGORITHM}")
    print(f"public_key {signer.public_key_text()}")
    return 0


def cmd_disclosures(args: argparse.Namespace) -> int:
    from dtsen.api import disclosure
    from dtsen.errors import DataError
    from dtsen.warehouse import engine

    if bool(args.client) == bool(args.nik):
        print("give --client C [--since T], or --nik N", file=sys.stderr)
        return 2
    with engine.connect("owner") as conn:  # the API's own role may not read the log
        if args.client:
            since = dt.datetime.fromisoformat(args.since) if args.since else None
            if since is not None and since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
            rows = disclosure.of_client(conn, args.client, since)
        else:
            key = settings().api_disclosure_key
            if not key:
                raise DataError(
                    "DTSEN_API_DISCLOSURE_KEY is not set: the log's person keys cannot be computed"
                )
            # ASCII digits: str.isdigit() takes "940701650387000²", which int() then fails on
            if not re.fullmatch(r"[0-9]{16}", args.nik):
                print("a NIK is 16 digits", file=sys.stderr)
                return 2
            rows = disclosure.of_person(conn, args.nik, key.encode())
    for r in rows:
        print(
            json.dumps(
                {
                    "at": r["at"].isoformat(timespec="seconds"),
                    "client": r["client_id"],
                    "kind": r["kind"],
                    "version": r["version"],
                    "program": r["program"],
                    "records": r["records"],
                    "fields": r["fields"],  # None: recorded before the log said (migration 0032)
                    "request": r["request"],
                }
            )
        )
    print(f"{len(rows)} disclosure(s)", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from dtsen.api.clients import DEFAULT_FIELDS, FIELDS
    from dtsen.cli import opens_warehouse  # each first removes what killed publications left

    api = sub.add_parser("api", help="serve the registry API for program teams (DCI Social Registry subset)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=None, help="default: DTSEN_API_PORT")
    api.add_argument(
        "--workers", type=int, default=1, help="server processes (rate limits then count per process)"
    )
    api.add_argument("--tls-cert", help="PEM certificate (chain): serve HTTPS")
    api.add_argument("--tls-key", help="PEM private key of --tls-cert")
    api.add_argument(
        "--behind-tls-proxy",
        action="store_true",
        help="plain HTTP on a non-loopback --host, for a TLS-terminating proxy on a private network",
    )
    api.set_defaults(func=opens_warehouse(cmd_api))

    client = sub.add_parser(
        "api-client", help="the registry API's clients: create, set-key, rotate, revoke, list"
    )
    actions = client.add_subparsers(dest="client_command", required=True)
    create = actions.add_parser("create", help="a new client; prints its secret once")
    create.add_argument("--id", required=True, help="client id (lower-case letters, digits, . _ -)")
    create.add_argument("--name", required=True, help="who it is, e.g. 'BPJS Kesehatan PBI JK'")
    create.add_argument(
        "--programs", default="", help="comma-separated program ids it may see (a program team's scope)"
    )
    create.add_argument(
        "--case-regions",
        help="comma-separated region codes (province, regency, district or village) whose open verification "
        "cases it reads with full identities: a region's field team (then no program is needed)",
    )
    create.add_argument(
        "--fields",
        default=",".join(DEFAULT_FIELDS),
        help=f"comma-separated fields it receives, of {', '.join(FIELDS)} (default: {','.join(DEFAULT_FIELDS)})",
    )
    create.add_argument("--rate", type=int, default=600, help="requests per minute (default 600)")
    create.add_argument(
        "--public-key",
        help="the Ed25519 public key the client signs its envelopes with (base64 of its raw 32 bytes); "
        "with one, its unsigned requests are refused",
    )
    set_key = actions.add_parser(
        "set-key", help="register or replace the public key a client signs its envelopes with"
    )
    set_key.add_argument("--id", required=True)
    given = set_key.add_mutually_exclusive_group(required=True)
    given.add_argument("--public-key", help="base64 of the raw 32-byte Ed25519 public key")
    given.add_argument(
        "--remove", action="store_true", help="no key: the client's requests are taken unsigned"
    )
    for name, text in (
        ("rotate", "a new secret; the old one and its tokens stop working"),
        ("revoke", "end a client"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("--id", required=True)
    actions.add_parser("list", help="every client and its scope")
    client.set_defaults(func=opens_warehouse(cmd_client))

    key = sub.add_parser(
        "api-signing-key", help="the registry API's own signing key: show its public key, or generate one"
    )
    key_actions = key.add_subparsers(dest="key_command", required=True)
    key_actions.add_parser(
        "show", help="the public key and kidId of DTSEN_API_SIGNING_KEY, for program teams"
    )
    key_actions.add_parser("generate", help="a new private key for DTSEN_API_SIGNING_KEY; printed once")
    key.set_defaults(func=cmd_signing_key)

    disclosures = sub.add_parser("disclosures", help="which records went to whom (the disclosure log)")
    disclosures.add_argument("--client", help="what went to this client")
    disclosures.add_argument("--since", help="with --client: from this time (ISO 8601)")
    disclosures.add_argument("--nik", help="who received this person's record")
    disclosures.set_defaults(func=opens_warehouse(cmd_disclosures))
