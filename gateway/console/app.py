"""The console as a sub-application mounted at ``/console``: its pages, assets and error pages.

A sub-application so that its errors are pages, not problem+json, and its
headers (CSP and the rest) cover every response it makes, without touching
the API's.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import errors
from gateway.api.problems import status_of
from gateway.bootstrap import Services
from gateway.console.auth import CsrfRefused, Refused, SignInNeeded, sign_in_url
from gateway.console.headers import ConsoleHeaders
from gateway.console.pages import audit, catalog, exemptions, overview, policy, sign_in
from gateway.console.rendering import page
from gateway.console.sessions import ConsoleSessions

_log = logging.getLogger("weightgate.console")
_STATIC = Path(__file__).parent / "static"


def create_console(services: Services) -> FastAPI:
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    console.state.services = services
    console.state.console_sessions = ConsoleSessions(services.sessions, services.clock)
    console.mount("/static", StaticFiles(directory=_STATIC), name="static")
    for area in (sign_in, overview, audit, exemptions, catalog, policy):
        console.include_router(area.router)
    _install_error_pages(console)
    console.add_middleware(ConsoleHeaders)
    return console


def _install_error_pages(console: FastAPI) -> None:
    @console.exception_handler(SignInNeeded)
    async def _sign_in(_request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(sign_in_url(exc.return_to), status_code=303)

    @console.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> HTMLResponse:
        request.state.viewer = exc.signed_in
        return page(request, "refused.html", status=403, needs=exc.needs)

    @console.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _exc: CsrfRefused) -> HTMLResponse:
        return _error(
            request,
            403,
            "The form was refused",
            "It did not carry this session's CSRF token, so nothing was changed. "
            "Reload the page and try again.",
        )

    @console.exception_handler(errors.WeightgateError)
    async def _domain(request: Request, exc: errors.WeightgateError) -> HTMLResponse:
        status = status_of(exc)
        if status == 503:
            _log.error("dependency unavailable: %s", exc.message, exc_info=exc.__cause__)
        detail = str(exc.detail.get("public", exc.message))
        return _error(request, status, exc.code.replace("_", " ").capitalize(), detail)

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> HTMLResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return _error(request, 422, "Invalid input", problems)

    @console.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> HTMLResponse:
        title = "Not found" if exc.status_code == 404 else str(exc.detail)
        return _error(request, exc.status_code, title, f"Nothing here at {request.url.path}.")


def _error(request: Request, status: int, title: str, detail: str) -> HTMLResponse:
    return page(request, "error.html", status=status, title=title, detail=detail)
