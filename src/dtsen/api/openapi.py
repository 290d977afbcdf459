"""The registry API's OpenAPI document, the program teams' contract: every route, with the DCI
envelopes each takes and answers as JSON Schemas of the pydantic models that check them.

It is not served at FastAPI's open `/openapi.json`: clients read it behind their token
(`GET /registry/openapi.json`), and it is published as a file, `docs/registry-api.openapi.json`
(`python -m dtsen.api.openapi > docs/registry-api.openapi.json`; a test keeps the file current)."""

from __future__ import annotations

import json
import sys

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from dtsen.api.deps import Caller
from dtsen.api.models import (
    Header,
    SearchAnswerEnvelope,
    SearchMessage,
    SubscribeMessage,
    TxnStatusMessage,
    UnsubscribeMessage,
)

TITLE = "DTSEN registry API"
VERSION = "1.0.0"
DESCRIPTION = (
    "The DCI Social Registry API subset of DTSEN, for program teams: docs/registry-api.md says what each "
    "route does, its errors and the signature scheme. Every route but the token endpoint and "
    "/registry/signing-key needs `Authorization: Bearer <token>` (OAuth2 client credentials)."
)


class _Envelope(BaseModel):
    signature: str = ""
    header: Header


class SearchRequest(_Envelope):
    message: SearchMessage


class SubscribeRequest(_Envelope):
    message: SubscribeMessage


class UnsubscribeRequest(_Envelope):
    message: UnsubscribeMessage


class TxnStatusRequestEnvelope(_Envelope):
    message: TxnStatusMessage


class AckMessage(BaseModel):
    ack_status: str = "ACK"
    timestamp: str
    error: dict
    correlation_id: str


class Ack(BaseModel):
    """The answer of an asynchronous route: its envelope follows at header.sender_uri."""

    message: AckMessage


class Error(BaseModel):
    code: str
    message: str


class Errors(BaseModel):
    """The DCI HttpErrorResponse: what went wrong and where, never a value sent."""

    errors: list[Error]


OPEN_ROUTES = ("/oauth2/client/token", "/registry/signing-key")  # no bearer token: the rest need one

# (path, request model, answer model) of each envelope route
ENVELOPE_ROUTES = (
    ("/registry/sync/search", SearchRequest, SearchAnswerEnvelope),
    ("/registry/search", SearchRequest, Ack),
    ("/registry/sync/subscribe", SubscribeRequest, None),
    ("/registry/subscribe", SubscribeRequest, Ack),
    ("/registry/sync/unsubscribe", UnsubscribeRequest, None),
    ("/registry/unsubscribe", UnsubscribeRequest, Ack),
    ("/registry/sync/txn/status", TxnStatusRequestEnvelope, None),
    ("/registry/txn/status", TxnStatusRequestEnvelope, Ack),
)


def _ref(model: type[BaseModel], schemas: dict) -> dict:
    document = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(document.pop("$defs", {}))
    schemas[model.__name__] = document
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def document(routes: list) -> dict:
    """The OpenAPI document of `routes` (an app's), with the envelope routes' bodies filled in."""
    doc = get_openapi(title=TITLE, version=VERSION, description=DESCRIPTION, routes=routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for path, request, answer in ENVELOPE_ROUTES:
        operation = doc["paths"][path]["post"]
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request, schemas)}},
        }
        if answer is not None:
            operation["responses"]["200"]["content"] = {"application/json": {"schema": _ref(answer, schemas)}}
    # errors are the DCI error shape (app.py), a 400 and never FastAPI's 422
    errors = _ref(Errors, schemas)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            operation["responses"]["default"] = {
                "description": "an error, in the DCI error shape",
                "content": {"application/json": {"schema": errors}},
            }
            if path in OPEN_ROUTES:
                operation["security"] = []
    for fastapi_own in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_own, None)
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    doc["security"] = [{"bearer": []}]
    return doc


router = APIRouter()


@router.get("/registry/openapi.json")
def openapi(client: Caller, request: Request):
    """This document, for a client with a token."""
    return document(request.app.routes)


def routers() -> list[APIRouter]:
    """Every router the API mounts, in order."""
    from dtsen.api.routes import cases, keys, oauth, search, subscriptions, txn, versions

    return [
        oauth.router,
        search.router,
        subscriptions.router,
        txn.router,
        versions.router,
        cases.router,
        keys.router,
        router,
    ]


def published() -> dict:
    """The document as the file publishes it: the routes of every router, no state needed."""
    app = FastAPI(openapi_url=None)
    for each in routers():
        app.include_router(each)
    return document(app.routes)


if __name__ == "__main__":
    json.dump(published(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
