"""ASGI guards of the registry API, outside its routes: a request body is refused (413) by its
Content-Length before it is read, or as soon as a chunked body grows past the cap, so no request,
authenticated or not, can make the server hold more than DTSEN_API_MAX_BODY_BYTES of it."""

from __future__ import annotations

import json

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
