"""ASGI guards of the registry API, outside its routes: a request body is refused (413) by its
Content-Length before it is read, or as soon as a chunked body grows past the cap, so no request,
authenticated or not, can make the server hold more than DTSEN_API_MAX_BODY_BYTES of it; and an
unexpected error is answered (500, in the DCI error shape) and logged without a value (`Unexpected`);
and every DCI envelope answered goes out signed with the registry's key (`SignResponses`)."""

from __future__ import annotations

import json
import logging
import traceback

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dtsen.api import dci


async def answer(send: Send, status: int, code: str, message: str, headers: list | None = None) -> None:
    body = json.dumps(dci.http_error(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def _too_large(self, send: Send) -> None:
        await answer(
            send,
            413,
            "err.request.too_large",
            f"the request body may be at most {self.max_bytes} bytes",
            [(b"connection", b"close")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._too_large(send)  # before a byte of the body is read
            return
        # the whole body, up to the cap, then handed on: a chunked body has no Content-Length to trust
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


log = logging.getLogger("dtsen.api")


def error_text(exc: BaseException) -> str:
    """An unexpected error, named without a value: its class and where it was raised; for a database
    error, dtsen.errors.database_error_text (no DETAIL, HINT or CONTEXT, which quote rows). Never
    str(exc): `int("940701650387000²")` says all but one of the NIK's digits."""
    import psycopg

    from dtsen.errors import database_error_text

    if isinstance(exc, psycopg.Error):
        text = database_error_text(exc)
    else:
        text = type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" at {frames[-1].filename.rsplit('/src/', 1)[-1]}:{frames[-1].lineno} in {frames[-1].name}"
    return text


class Unexpected:
    """Outermost of the app's middleware: an error no route handled is answered 500 in the DCI error
    shape and logged as error_text(), not re-raised, because the server (uvicorn) would log it with
    its traceback, whose messages quote values. A response already started is only cut short."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:  # noqa: BLE001 (every error: that is the point)
            log.error("unexpected error answering %s: %s", scope.get("method", "?"), error_text(exc))
            if not started:
                await answer(send, 500, "err.service.internal", "an unexpected error: it is logged")


class SignResponses:
    """Innermost of the app's middleware: every 2xx JSON answer that is a DCI envelope (an object with
    `header` and `message`) goes out with its `signature` set by the registry's key (dtsen.api.signing),
    over the header and message as sent. An ACK (only `message`), an error and a file pass untouched."""

    def __init__(self, app: ASGIApp, signer) -> None:
        self.app, self.signer = app, signer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def sending(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                json_answer = headers.get(b"content-type", b"").lower().startswith(b"application/json")
                if 200 <= message["status"] < 300 and json_answer:
                    start = message  # held until the whole body is here
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                body = b"".join(chunks)
                if len(body) > 65536:  # parsing and rendering a large page would hold up the event loop
                    body = await anyio.to_thread.run_sync(self._sealed, body)
                else:
                    body = self._sealed(body)
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
                message = {"type": "http.response.body", "body": body}
            await send(message)

        await self.app(scope, receive, sending)

    def _sealed(self, body: bytes) -> bytes:
        try:
            answer = json.loads(body)
        except ValueError:
            return body
        if not (isinstance(answer, dict) and "header" in answer and "message" in answer):
            return body
        return json.dumps(self.signer.seal(answer), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
