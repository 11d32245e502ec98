"""The app factory. Tests and ``weightgate serve`` both build the app around their own services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI

from gateway.api import docs, problems
from gateway.api.access_log import AccessLogMiddleware
from gateway.api.deps import authenticate_held, authenticate_scope
from gateway.api.middleware import AuthenticateBeforeBody, BodyLimitMiddleware, RequestIdMiddleware
from gateway.api.routes import router
from gateway.bootstrap import Services, build_services
from gateway.config import Settings
from gateway.console.app import create_console

_DESCRIPTION = """\
Before anyone gets a byte, the gateway checks who is asking and which export
tier their country is in, decides under a versioned export-control policy,
writes the decision to a tamper-evident audit log, and only then hands out an
encrypted, time-limited download.

Callers authenticate with a bearer token (or a DPoP-bound one). Every error is
an RFC 9457 `application/problem+json` body whose `code` is stable.
"""

_TAGS = [
    {"name": "grants", "description": "Ask for weights; fetch, inspect and revoke grants."},
    {"name": "catalog", "description": "The models on offer."},
    {"name": "policy", "description": "The export-control policy: explain and reload."},
    {"name": "orgs", "description": "The organisation registry."},
    {"name": "exemptions", "description": "Licenses and validated end users, two-person rule."},
    {"name": "quotas", "description": "Grants per hour and bytes per day."},
    {"name": "audit", "description": "The audit log: entries, checkpoints, proofs, receipts."},
    {"name": "operations", "description": "Liveness, readiness and metrics."},
]


# Threads a serving process runs its synchronous handlers on (anyio's default is
# 40). The grant route holds one only for its CPU work: it awaits its audit
# commit on the event loop. Fewer threads than connections keep the GIL from
# being handed round more than the work needs; 4 and 16 measured alike with
# `python -m benchmarks grants`, and 16 keeps slow synchronous routes (the
# audit reads) from queueing behind each other.
REQUEST_THREADS = 16


def create_app(services: Services, *, owns_services: bool = False) -> FastAPI:
    """The app around ``services``; if it ``owns_services``, its lifespan starts and closes them.

    A serving process owns its services: startup starts checkpoint
    publication, and shutdown drains the audit writer and releases the
    database. Tests own theirs and serve with the lifespan off.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if owns_services:
            anyio.to_thread.current_default_thread_limiter().total_tokens = REQUEST_THREADS
            services.start()
        try:
            yield
        finally:
            if owns_services:
                services.close()

    app = FastAPI(
        title="weightgate",
        summary="Export-controlled, audited, encrypted downloads of model weights.",
        description=_DESCRIPTION,
        version="0.1.0",
        openapi_tags=_TAGS,
        lifespan=lifespan,
        docs_url=None,  # served by ``docs`` from packaged assets, not a CDN
        redoc_url=None,
    )
    # The document FastAPI builds, plus the problem type, the bearer scheme and
    # the problems that follow from each route's shape (see ``problems``).
    app.openapi = lambda: problems.openapi_document(app)  # type: ignore[method-assign]
    app.state.services = services
    problems.install(app)
    docs.install(app)

    # Outermost last: every answer, a 413 included, carries a request id and
    # is logged; no body is read before its sender is authenticated, nor beyond the cap.
    app.add_middleware(
        AuthenticateBeforeBody,
        authenticate=authenticate_scope,
        authenticate_held=authenticate_held,
    )
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(AccessLogMiddleware)
    app.include_router(router)
    app.mount("/console", create_console(services))
    return app


def worker_app() -> FastAPI:
    """One ``serve --workers N`` process: its own services from the environment, one database."""
    return create_app(build_services(Settings()), owns_services=True)
