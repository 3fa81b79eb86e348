"""ASGI middleware: security headers, a request body size limit and optional bearer-token auth."""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The API's own answers are JSON that no page should run, frame or load as anything else.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
#: The admin UI builds its DOM from text only: no inline script or style, no other origins.
UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
#: Swagger UI (served from the package) sets inline styles on the elements it renders.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
#: Content-Security-Policy by path prefix; the first match wins, the API's policy otherwise.
CSP_BY_PREFIX: tuple[tuple[str, str], ...] = (("/ui", UI_CSP), ("/docs", DOCS_CSP))
#: Sent on every answer, unless the answer set the header itself.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    # Answers hold task data: never kept by a browser or a shared cache (the UI's files say no-cache).
    ("Cache-Control", "no-store"),
)


def security_headers(path: str) -> list[tuple[str, str]]:
    """The security headers of an answer to ``path``: ``SECURITY_HEADERS`` and its CSP."""
    for prefix, policy in CSP_BY_PREFIX:
        if path == prefix or path.startswith(prefix + "/"):
            return [*SECURITY_HEADERS, ("Content-Security-Policy", policy)]
    return [*SECURITY_HEADERS, ("Content-Security-Policy", API_CSP)]


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers]


class SecurityHeaders:
    """Add ``security_headers(path)`` to every HTTP answer (404s, 405s, 413s and 401s included),
    keeping any of them an answer already set."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Encoded once: this runs on every answer.
        self._by_prefix = [(prefix, _encoded(security_headers(prefix))) for prefix, _ in CSP_BY_PREFIX]
        self._default = _encoded(security_headers(""))

    def _headers_for(self, path: str) -> list[tuple[bytes, bytes]]:
        for prefix, headers in self._by_prefix:
            if path == prefix or path.startswith(prefix + "/"):
                return headers
        return self._default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = self._headers_for(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                message["headers"] = headers + [h for h in extra if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _send_json(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Refuse (413) a request whose body exceeds ``max_bytes``, by its Content-Length or as it streams.

    The body is read here, up to the limit, and replayed to the app: the API's bodies are JSON the
    app reads whole anyway, and this way an over-long chunked body is refused before any of it is
    parsed.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = f"request body larger than {self.max_bytes} bytes"
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, "malformed Content-Length header")
                    return
                if declared > self.max_bytes:
                    await _send_json(send, 413, too_large)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class BearerAuth:
    """Require ``Authorization: Bearer <token>`` on every path except ``open_paths`` and those under
    ``open_prefixes`` (401 otherwise)."""

    def __init__(
        self, app: ASGIApp, token: str, open_paths: Collection[str], open_prefixes: Sequence[str] = ()
    ) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = tuple(open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
        if not secrets.compare_digest(given, self.expected):
            await _send_json(send, 401, "missing or invalid bearer token", [(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)
