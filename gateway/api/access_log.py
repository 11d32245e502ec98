"""The access log: one line per exchange, without the secrets some URLs carry.

A file URL's ``cap`` parameter is a capability (whoever has it may download,
while the grant lives), and local storage URLs carry an HMAC ``sig``: neither
may reach a log line that operators, log shippers and SIEMs all read. A text
line quotes the request target with their values redacted; a JSON line
(``logging_setup``) names the path and the route, and no query string at all.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Query parameters whose values are credentials, whatever the route.
# ``code`` and ``state`` are an OIDC sign-in's, on the console's callback.
SECRET_PARAMETERS = (
    "cap",
    "sig",
    "code",
    "state",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)
_SECRET = re.compile(
    r"(?P<name>(?:^|[?&])(?:" + "|".join(map(re.escape, SECRET_PARAMETERS)) + r")=)[^&\s\"]*",
    re.IGNORECASE,
)

ACCESS_LOGGER = "gateway.access"
# The attribute of an access line's record that holds its fields (for ``JsonFormatter``).
ACCESS_FIELDS = "access"
_log = logging.getLogger(ACCESS_LOGGER)


def redact(target: str) -> str:
    return _SECRET.sub(r"\g<name>[redacted]", target)


class AccessLogMiddleware:
    """Logs each exchange once answered: who asked, on which route, the status and the latency.

    Outermost, so a 413 or a refusal before any route is logged too. The
    request id, the caller's subject (once authenticated) and the client's
    address (as trusted proxies report it) are what the inner layers leave in
    the scope's state.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what uvicorn answers if the app fails before responding

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            fields = access_fields(scope, status, time.perf_counter() - began)
            _log.info(
                '%s - "%s %s HTTP/%s" %d',
                fields["client"],
                fields["method"],
                redact(_target(scope)),
                scope.get("http_version", "1.1"),
                status,
                extra={ACCESS_FIELDS: fields},
            )


def access_fields(scope: Scope, status: int, seconds: float) -> dict[str, Any]:
    """An access line's fields: low-cardinality ones (route, method, status) and the request's."""
    state = scope.get("state") or {}
    route = scope.get("route")
    peer = scope.get("client")
    return {
        "request_id": state.get("request_id"),
        "subject": state.get("subject"),
        "method": scope["method"],
        # The template (``/v1/grants/{grant_id}``), None when no route matched.
        "route": getattr(route, "path", None),
        "path": scope["path"],
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
        "client": state.get("client_address") or (peer[0] if peer else None),
    }


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    path: str = scope["path"]
    return path + (f"?{query}" if query else "")
