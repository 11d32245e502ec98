"""The app factory. Tests and ``weightgate serve`` both build the app around their own services."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from gateway.api import problems
from gateway.api.routes import router
from gateway.bootstrap import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="weightgate",
        summary="Export-controlled, audited, encrypted downloads of model weights.",
        version="0.1.0",
    )
    app.state.services = services
    problems.install(app)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    app.include_router(router)
    return app
