"""Pure ASGI middleware: a request id on every exchange, and a hard cap on request bodies.

Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which runs every
request through an extra task and stream: these two only look at headers and
count bytes.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Every JSON body the API takes fits in a few KiB (the largest, a grant with a
# post-quantum recipient key and a file list, is under 8 KiB in practice).
# Anything larger is refused before it is read, whoever sends it.
MAX_BODY_BYTES = 16 << 10


class RequestIdMiddleware:
    """Names each exchange (``request.state.request_id``, ``X-Request-ID``) for the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a body over ``limit`` bytes: by its Content-Length at once, or as it streams in."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit, scope["path"])
            return
        received = 0
        started = refused = False

        async def counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    # Answer now: the app may turn the exception into its own
                    # error response, which ``tracked`` then drops.
                    if not started and not refused:
                        refused = True
                        await _too_large(send, self.limit, scope["path"])
                    raise _BodyTooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        # Answered 413 already (or the response had begun, and is cut off).
        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, counted, tracked)


async def _too_large(send: Send, limit: int, path: str) -> None:
    body = json.dumps(
        {
            "type": "about:blank",
            "title": "payload too large",
            "status": 413,
            "detail": f"request bodies are limited to {limit:,} bytes",
            "code": "too_large",
            "instance": path,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# Verifies a request's credentials from its headers alone: the caller, or the
# refusal (an exception) to raise later, in the route's auth dependency.
Authenticate = Callable[[Scope], object]
# The same, if it can answer without blocking (a token checked in memory); else None.
AuthenticateHeld = Callable[[Scope], object | None]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class AuthenticateBeforeBody:
    """Requests with a body are authenticated before a byte of it is read.

    The outcome is left in ``request.state.authenticated`` for the route's
    auth dependency, which audits a refusal as always. A refused caller's body
    is never read: the app is handed an empty one, and the dependency answers
    401 before anything would parse it. Verifying can touch the database
    (single-use tokens, DPoP proofs) or an issuer's JWKS, so it runs in the
    thread pool, unless ``authenticate_held`` can answer from memory.
    """

    def __init__(
        self, app: ASGIApp, authenticate: Authenticate, authenticate_held: AuthenticateHeld
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.authenticate_held = authenticate_held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The console's forms authenticate by session cookie, before they are read.
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or scope["path"].startswith("/console/")
        ):
            await self.app(scope, receive, send)
            return
        outcome = self.authenticate_held(scope)
        if outcome is None:
            outcome = await anyio.to_thread.run_sync(self.authenticate, scope)
        scope.setdefault("state", {})["authenticated"] = outcome
        if isinstance(outcome, Exception):
            receive = _empty_body
        await self.app(scope, receive, send)


async def _empty_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
