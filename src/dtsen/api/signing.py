"""Signed DCI envelopes (issue 24): the `signature` of `{signature, header, message}` as the DCI
specification describes it, Ed25519 over a digest of the header and message, a key per client.

What is signed, exactly (docs/registry-api.md, Signatures, says the same for integrators):

1. the envelope's canonical bytes: `json.dumps({"header": header, "message": message},
   sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")`;
2. its digest: `BLAKE-512=` + base64 of the BLAKE2b-512 of those bytes;
3. the signing string, three lines joined by "\\n" (no final newline):
   `(created): <unix seconds>`, `(expires): <unix seconds>`, `digest: BLAKE-512=<...>`;
4. the `signature` value, one line:
   `Signature: namespace="dci", kidId="<sender_id>|<key id>|ed25519", algorithm="ed25519",
   created="<unix>", expires="<unix>", headers="(created) (expires) digest",
   signature="<base64 of the Ed25519 signature of the signing string>"`.

A key id is the first 16 hex characters of the sha256 of the raw 32-byte public key; public keys
travel as the base64 of those 32 bytes, and the registry's private key (DTSEN_API_SIGNING_KEY) as the
base64 of its raw 32-byte seed.

The registry verifies the signature of a request from a client with a registered key (`verify`) and
signs every answer carrying a header and a message (`Signer.seal`, `SignResponses`); a program team
checks an answer with `verify_envelope` and the registry's public key (GET /registry/signing-key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from dtsen.errors import DataError

NAMESPACE = "dci"
ALGORITHM = "ed25519"
HEADERS = "(created) (expires) digest"
REGISTRY_SENDER = "dtsen"  # header.sender_id of every answer, and the sender of its kidId
CLOCK_SKEW_SECONDS = 60  # a `created` at most this far ahead of our clock is taken
MISSING = "err.signature.missing"
INVALID = "err.signature.invalid"
_PARAMS = ("namespace", "kidId", "algorithm", "created", "expires", "headers", "signature")
_PARAM = re.compile(r'\s*([A-Za-z]+)="([^"]*)"\s*')
_SECONDS = re.compile(r"[0-9]{1,12}")
_RAW = serialization.Encoding.Raw


class SignatureError(Exception):
    """A request or answer whose signature is missing (`code` err.signature.missing) or does not
    verify (err.signature.invalid). The message says which rule failed, never a value."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# -- what is signed ---------------------------------------------------------------------------------


def canonical(header: object, message: object) -> bytes:
    return json.dumps(
        {"header": header, "message": message}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def digest(header: object, message: object) -> str:
    """`BLAKE-512=<base64>` of the envelope's canonical bytes."""
    return "BLAKE-512=" + base64.b64encode(hashlib.blake2b(canonical(header, message)).digest()).decode()


def signing_string(created: int, expires: int, header: object, message: object) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: {digest(header, message)}".encode()


# -- keys -------------------------------------------------------------------------------------------


def _raw32(text: object, what: str) -> bytes:
    if isinstance(text, str):
        try:
            raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raw = b""
        if len(raw) == 32:
            return raw
    raise DataError(f"{what} is not the base64 of 32 bytes (a raw Ed25519 key)")


def private_key(text: object, what: str = "the private key") -> Ed25519PrivateKey:
    """An Ed25519 private key from the base64 of its raw 32-byte seed (DataError, no value, if not)."""
    return Ed25519PrivateKey.from_private_bytes(_raw32(text, what))


def public_key(text: object, what: str = "the public key") -> Ed25519PublicKey:
    """An Ed25519 public key from the base64 of its raw 32 bytes (DataError, no value, if not)."""
    return Ed25519PublicKey.from_public_bytes(_raw32(text, what))


def public_key_text(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """The base64 of the raw 32-byte public key (of a private key: its public key's)."""
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    return base64.b64encode(key.public_bytes(_RAW, serialization.PublicFormat.Raw)).decode()


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey | str) -> str:
    """The first 16 hex characters of the sha256 of the raw public key."""
    text = key if isinstance(key, str) else public_key_text(key)
    return hashlib.sha256(base64.b64decode(text)).hexdigest()[:16]


def generate_private_key_text() -> str:
    """A new private key: the base64 of its raw 32-byte seed."""
    seed = Ed25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(seed).decode()


# -- signing and verifying --------------------------------------------------------------------------


def sign(
    header: object,
    message: object,
    private: Ed25519PrivateKey,
    sender_id: str,
    key_id: str,
    lifetime_seconds: int,
    now: float | None = None,
) -> str:
    """The whole `signature` value of an envelope (`Signature: namespace="dci", ...`)."""
    created = int(time.time() if now is None else now)
    expires = created + int(lifetime_seconds)
    signed = private.sign(signing_string(created, expires, header, message))
    return (
        f'Signature: namespace="{NAMESPACE}", kidId="{sender_id}|{key_id}|{ALGORITHM}", '
        f'algorithm="{ALGORITHM}", created="{created}", expires="{expires}", headers="{HEADERS}", '
        f'signature="{base64.b64encode(signed).decode()}"'
    )


def _invalid(message: str) -> SignatureError:
    return SignatureError(INVALID, message)


def parse(signature: str) -> dict[str, str]:
    """The parameters of a `signature` value: each of _PARAMS once, nothing else."""
    text = signature.strip()
    if text[:10].lower() == "signature:":
        text = text[10:]
    params: dict[str, str] = {}
    for part in text.split(","):
        match = _PARAM.fullmatch(part)
        if match is None or match.group(1) in params or match.group(1) not in _PARAMS:
            raise _invalid(
                'the signature is not of the form Signature: namespace="dci", kidId="...", '
                'algorithm="ed25519", created="...", expires="...", headers="(created) (expires) digest", '
                'signature="..."'
            )
        params[match.group(1)] = match.group(2)
    if set(params) != set(_PARAMS):
        raise _invalid(f"the signature needs each of {', '.join(_PARAMS)}")
    return params


def verify(
    signature: object,
    header: object,
    message: object,
    public: Ed25519PublicKey,
    *,
    sender_id: str,
    key_id: str,
    now: float | None = None,
    max_age_seconds: int = 300,
) -> None:
    """Raise SignatureError unless `signature` is a valid signature of `header` and `message` made by
    `sender_id` (also header.sender_id) with the key `key_id` (`public`), unexpired, created no later
    than CLOCK_SKEW_SECONDS from now and valid for at most `max_age_seconds`."""
    if signature is None or signature == "":
        raise SignatureError(MISSING, "the envelope's signature is missing: sign the header and message")
    if not isinstance(signature, str):
        raise _invalid("the signature must be a string")
    params = parse(signature)
    if params["namespace"] != NAMESPACE:
        raise _invalid(f'the signature\'s namespace must be "{NAMESPACE}"')
    if params["algorithm"] != ALGORITHM or params["headers"] != HEADERS:
        raise _invalid(f'the signature\'s algorithm must be "{ALGORITHM}" over headers "{HEADERS}"')
    kid = params["kidId"].split("|")
    if len(kid) != 3 or kid[2] != ALGORITHM:
        raise _invalid("the signature's kidId must be sender_id|key id|ed25519")
    sender = header.get("sender_id") if isinstance(header, dict) else None
    if kid[0] != sender_id or sender != sender_id:
        raise _invalid("the signature's kidId and header.sender_id must both be the sender's id")
    if kid[1] != key_id:
        raise _invalid("the signature's key id is not the sender's registered key")
    if not (_SECONDS.fullmatch(params["created"]) and _SECONDS.fullmatch(params["expires"])):
        raise _invalid("the signature's created and expires are unix times in whole seconds")
    created, expires = int(params["created"]), int(params["expires"])
    now = time.time() if now is None else now
    if created > now + CLOCK_SKEW_SECONDS:
        raise _invalid("the signature was created in the future: check the sender's clock")
    if expires <= now:
        raise _invalid("the signature has expired")
    if expires <= created or expires - created > max_age_seconds:
        raise _invalid(f"a signature may be valid for at most {max_age_seconds} seconds after it is created")
    try:
        signed = base64.b64decode(params["signature"].encode("ascii"), validate=True)
        public.verify(signed, signing_string(created, expires, header, message))
    except (binascii.Error, UnicodeEncodeError, InvalidSignature) as exc:
        raise _invalid(
            "the signature does not match the header and message (or was not made with the sender's key)"
        ) from exc


class Signer:
    """The registry's own key: signs the answers (`seal`), sender `dtsen`."""

    def __init__(self, private_key_text: str | None, lifetime_seconds: int) -> None:
        if not private_key_text:
            raise DataError("DTSEN_API_SIGNING_KEY is not set: the API signs every answer with it")
        self._key = private_key(private_key_text, "DTSEN_API_SIGNING_KEY")
        self.key_id = key_id(self._key)
        self.kid = f"{REGISTRY_SENDER}|{self.key_id}|{ALGORITHM}"
        self.lifetime_seconds = lifetime_seconds

    def public_key_text(self) -> str:
        return public_key_text(self._key)

    def sign(self, header: object, message: object) -> str:
        return sign(header, message, self._key, REGISTRY_SENDER, self.key_id, self.lifetime_seconds)

    def seal(self, envelope: dict) -> dict:
        """`envelope` with its `signature` set over its header and message."""
        return {**envelope, "signature": self.sign(envelope["header"], envelope["message"])}


def verify_envelope(body: dict, registry_public_key: str, max_age_seconds: int = 300) -> None:
    """For program teams: raise SignatureError unless `body`, an answer of the registry API parsed
    from its JSON, carries a valid signature of the registry (its public key as GET
    /registry/signing-key gives it, the base64 of the raw 32 bytes)."""
    if not isinstance(body, dict):
        raise _invalid("the answer is not a JSON object")
    key = public_key(registry_public_key, "the registry's public key")
    verify(
        body.get("signature"),
        body.get("header"),
        body.get("message"),
        key,
        sender_id=REGISTRY_SENDER,
        key_id=key_id(key),
        max_age_seconds=max_age_seconds,
    )
