"""The registry API's clients (program teams' systems) and their bearer tokens.

A client's secret is shown once (at creation or rotation) and kept only as a scrypt hash; a token is
an opaque random string kept only as its sha256, with an expiry. Revoking a client, or rotating its
secret, ends its tokens at once. A client's scope is its programs and the recipient fields it is
given (names only where the scope says so). A client may register the Ed25519 public key it signs its
envelopes with (dtsen.api.signing): the API then refuses its unsigned or badly signed requests.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import psycopg

from dtsen.errors import DataError

# What a client may be given of a recipient; `nama` (the person's name) only where its scope says so.
FIELDS = ("nik", "no_kk", "kode_wilayah", "desil", "prioritas", "nama")
DEFAULT_FIELDS = ("nik", "no_kk", "kode_wilayah", "desil")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class InvalidClient(Exception):
    """Unknown client, wrong secret or revoked client (the caller cannot tell which: on purpose)."""


@dataclass(frozen=True)
class Client:
    client_id: str
    name: str
    programs: tuple[str, ...]
    fields: tuple[str, ...]
    rate_per_minute: int
    signing_public_key: str | None = None  # base64 of the raw Ed25519 public key; None: none registered
    case_regions: tuple[str, ...] = ()  # a region's field team: the region codes whose cases it works


def _client(row) -> Client:
    """A Client of a row of (client_id, name, programs, fields, rate_per_minute, signing_public_key,
    case_regions)."""
    return Client(row[0], row[1], tuple(row[2]), tuple(row[3]), row[4], row[5], tuple(row[6]))


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    computed = hashlib.scrypt(
        secret.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p)
    )
    return hmac.compare_digest(computed.hex(), digest)


@functools.cache
def _dummy_hash() -> str:
    """A hash no secret matches, checked for unknown client ids (same parameters as a real one)."""
    return hash_secret(secrets.token_urlsafe(32))


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


REGION_CODE = re.compile(r"[0-9]{2}|[0-9]{4}|[0-9]{6}|[0-9]{10}")
# what a field team gets of a case's family: what a visit needs
CASE_FIELDS = ("nik", "no_kk", "kode_wilayah", "nama")


def _check_case_regions(regions: list[str]) -> None:
    bad = [r for r in regions if not REGION_CODE.fullmatch(r)]
    if bad:
        raise DataError(f"case regions are 2, 4, 6 or 10-digit region codes; not: {', '.join(bad[:5])}")


def _check_scope(
    programs: list[str], fields: list[str], known_programs: set[str], case_regions: list[str] = ()
) -> None:
    _check_case_regions(list(case_regions))
    if case_regions and not programs:  # a field team: its cases, no program
        return
    unknown = sorted(set(programs) - known_programs)
    if not programs or unknown:
        raise DataError(
            f"programs must be some of {', '.join(sorted(known_programs))}"
            + (f"; unknown: {', '.join(unknown)}" if unknown else "")
        )
    bad = sorted(set(fields) - set(FIELDS))
    if not fields or bad:
        raise DataError(
            f"fields must be some of {', '.join(FIELDS)}" + (f"; unknown: {', '.join(bad)}" if bad else "")
        )


def checked_public_key(text: str) -> str:
    """An Ed25519 public key as the base64 of its raw 32 bytes, in its canonical form (DataError,
    without the value, if it is not one)."""
    from dtsen.api import signing

    return signing.public_key_text(signing.public_key(text, "the public key"))


def create_client(
    conn: psycopg.Connection,
    client_id: str,
    name: str,
    programs: list[str],
    fields: list[str],
    rate_per_minute: int,
    known_programs: set[str],
    signing_public_key: str | None = None,
    case_regions: list[str] = (),
) -> str:
    """Register a client (with the public key it signs its envelopes with, if given); returns its
    secret (shown once, never stored). A client with `case_regions` is those regions' field team: it
    reads their open verification cases (and needs no program); its fields are CASE_FIELDS."""
    _check_scope(programs, fields, known_programs, case_regions)
    if case_regions and not programs:
        fields = list(CASE_FIELDS)
    key = checked_public_key(signing_public_key) if signing_public_key is not None else None
    secret = secrets.token_urlsafe(32)
    try:
        conn.execute(
            "INSERT INTO api.client (client_id, name, secret_hash, programs, fields, rate_per_minute, "
            "signing_public_key, case_regions) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                client_id,
                name,
                hash_secret(secret),
                sorted(set(programs)),
                list(dict.fromkeys(fields)),
                rate_per_minute,
                key,
                sorted(set(case_regions)),
            ),
        )
    except psycopg.errors.UniqueViolation as exc:
        raise DataError(f"client {client_id} exists: rotate its secret or revoke it") from exc
    except psycopg.errors.CheckViolation as exc:
        raise DataError(
            "a client id is 3-64 characters: lower-case letters, digits, '.', '_', '-'; the rate is positive"
        ) from exc
    return secret


def rotate_secret(conn: psycopg.Connection, client_id: str) -> str:
    """A new secret for a client; the old one and every token issued with it stop working now."""
    secret = secrets.token_urlsafe(32)
    updated = conn.execute(
        "UPDATE api.client SET secret_hash = %s, rotated_at = now() WHERE client_id = %s AND revoked_at IS NULL "
        "RETURNING client_id",
        (hash_secret(secret), client_id),
    ).fetchone()
    if not updated:
        raise DataError(f"no active client {client_id}")
    conn.execute("DELETE FROM api.token WHERE client_id = %s", (client_id,))
    return secret


def set_signing_key(conn: psycopg.Connection, client_id: str, signing_public_key: str | None) -> None:
    """Register (or replace) the public key a client signs its envelopes with; None removes it, and
    the client's requests are then taken unsigned (unless DTSEN_API_REQUIRE_SIGNED_REQUESTS)."""
    key = checked_public_key(signing_public_key) if signing_public_key is not None else None
    updated = conn.execute(
        "UPDATE api.client SET signing_public_key = %s WHERE client_id = %s AND revoked_at IS NULL "
        "RETURNING client_id",
        (key, client_id),
    ).fetchone()
    if not updated:
        raise DataError(f"no active client {client_id}")


def revoke_client(conn: psycopg.Connection, client_id: str) -> None:
    """The client can no longer get tokens, and its tokens stop working now."""
    updated = conn.execute(
        "UPDATE api.client SET revoked_at = now() WHERE client_id = %s AND revoked_at IS NULL RETURNING client_id",
        (client_id,),
    ).fetchone()
    if not updated:
        raise DataError(f"no active client {client_id}")
    conn.execute("DELETE FROM api.token WHERE client_id = %s", (client_id,))


def list_clients(conn: psycopg.Connection) -> list[dict]:
    rows = conn.execute(
        "SELECT client_id, name, programs, fields, rate_per_minute, created_at, rotated_at, revoked_at, "
        "signing_public_key, case_regions FROM api.client ORDER BY client_id"
    ).fetchall()
    keys = (
        "client_id",
        "name",
        "programs",
        "fields",
        "rate_per_minute",
        "created_at",
        "rotated_at",
        "revoked_at",
        "signing_public_key",
        "case_regions",
    )
    return [dict(zip(keys, r, strict=True)) for r in rows]


def issue_token(conn: psycopg.Connection, client_id: str, secret: str, minutes: float) -> tuple[str, int]:
    """OAuth2 client credentials: a bearer token and its lifetime in seconds."""
    row = conn.execute(
        "SELECT secret_hash FROM api.client WHERE client_id = %s AND revoked_at IS NULL", (client_id,)
    ).fetchone()
    # an unknown (or revoked) id costs the same scrypt as a known one: its time tells nothing
    if not verify_secret(secret, row[0] if row else _dummy_hash()) or row is None:
        raise InvalidClient
    token = secrets.token_urlsafe(32)
    lifetime = dt.timedelta(minutes=minutes)
    conn.execute(
        "INSERT INTO api.token (token_hash, client_id, expires_at) VALUES (%s, %s, now() + %s)",
        (_token_hash(token), client_id, lifetime),
    )
    conn.execute(
        "DELETE FROM api.token WHERE client_id = %s AND expires_at < now() - interval '1 day'", (client_id,)
    )
    return token, int(lifetime.total_seconds())


def client_for_token(conn: psycopg.Connection, token: str) -> Client | None:
    """The client a bearer token belongs to, if it is unexpired and the client not revoked."""
    row = conn.execute(
        "SELECT c.client_id, c.name, c.programs, c.fields, c.rate_per_minute, c.signing_public_key, c.case_regions "
        "FROM api.token t JOIN api.client c USING (client_id) "
        "WHERE t.token_hash = %s AND t.expires_at > now() AND c.revoked_at IS NULL",
        (_token_hash(token),),
    ).fetchone()
    return None if row is None else _client(row)


def client_by_id(conn: psycopg.Connection, client_id: str) -> Client | None:
    """The client as it is now (its scope may have changed since it asked), None if revoked."""
    row = conn.execute(
        "SELECT c.client_id, c.name, c.programs, c.fields, c.rate_per_minute, c.signing_public_key, c.case_regions "
        "FROM api.client c WHERE c.client_id = %s AND c.revoked_at IS NULL",
        (client_id,),
    ).fetchone()
    return None if row is None else _client(row)
