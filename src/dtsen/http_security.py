"""Security headers on every HTTP response of the registry API and the cockpit (issue 24, item 9).

A pure ASGI middleware (no BaseHTTPMiddleware: streamed Parquet downloads pass through untouched). It
sets, on every response including errors:

- `Content-Security-Policy`: the API answers JSON and files, never a page, so nothing may load or run
  (`API_POLICY`); the cockpit gets a policy built from what its templates use (dtsen.cockpit.app);
- `X-Frame-Options` (`DENY` for the API; the cockpit is framed by the Airflow UI of the same origin,
  so `SAMEORIGIN` there), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`;
- `Cache-Control: no-store` unless the route set its own: behind both apps' authentication every
  answer is scoped data (recipients, or figures of a round) that no shared cache or browser may keep;
- `Strict-Transport-Security` when the request came over TLS.

Installed with `install(app, ...)` rather than `app.add_middleware`: Starlette puts user middleware
inside ServerErrorMiddleware, so an unhandled error's 500 would go out bare.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HSTS = "max-age=31536000"


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, policy: str = API_POLICY, frame_options: str = "DENY") -> None:
        self.app = app
        self.fixed = [
            (b"content-security-policy", policy.encode()),
            (b"x-frame-options", frame_options.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tls = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                ours = {name for name, _ in self.fixed}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in ours]
                headers += self.fixed
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                if tls:
                    headers.append((b"strict-transport-security", HSTS.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install(app, *, policy: str = API_POLICY, frame_options: str = "DENY") -> None:
    """Wrap `app` (a Starlette/FastAPI app) outermost, around its ServerErrorMiddleware too."""
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return SecurityHeaders(build(), policy=policy, frame_options=frame_options)

    app.build_middleware_stack = build_with_headers
