"""The registry's public signing key, for program teams to verify the `signature` of its answers
(dtsen.api.signing): public, no token needed."""

from fastapi import APIRouter

from dtsen.api import signing
from dtsen.api.deps import AppState

router = APIRouter()


@router.get("/registry/signing-key")
async def signing_key(app: AppState):
    return {
        "kid": app.signer.kid,
        "key_id": app.signer.key_id,
        "algorithm": signing.ALGORITHM,
        "public_key": app.signer.public_key_text(),
        "sender_id": signing.REGISTRY_SENDER,
    }
