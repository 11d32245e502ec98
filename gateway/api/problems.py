"""The only place domain errors become HTTP statuses: RFC 9457 problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import errors

_log = logging.getLogger(__name__)

STATUS: dict[type[errors.WeightgateError], int] = {
    errors.InvalidInput: 422,
    errors.Unauthenticated: 401,
    errors.PolicyDenied: 403,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.IntegrityError: 422,
    errors.QuotaExceeded: 429,
    errors.Unavailable: 503,
}


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    if status == 429 and "retry_after" in extra:
        return JSONResponse(
            body,
            status_code=status,
            media_type="application/problem+json",
            headers={"Retry-After": str(extra["retry_after"])},
        )
    headers = (
        {"WWW-Authenticate": 'Bearer realm="weightgate", DPoP algs="ES256 EdDSA"'}
        if status == 401
        else None
    )
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def status_of(error: errors.WeightgateError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.WeightgateError)
    async def _domain(request: Request, exc: errors.WeightgateError) -> JSONResponse:
        status = status_of(exc)
        if status == 503:
            _log.error("dependency unavailable: %s", exc.message, exc_info=exc.__cause__)
        extra: dict[str, Any] = {"code": exc.code}
        decision = exc.detail.get("decision")
        if decision is not None:
            extra["reasons"] = decision["reasons"]
            extra["tier"] = decision["tier"]
            extra["policy"] = decision["policy"]
        for key in ("audit_index", "state", "retry_after"):
            if key in exc.detail:
                extra[key] = exc.detail[key]
        return problem(
            status, exc.code.replace("_", " "), exc.message, instance=request.url.path, **extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return problem(
            422,
            "invalid input",
            "the request body or parameters are malformed",
            code="invalid_input",
            errors=issues,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, "http error", str(exc.detail), instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s", request.url.path)
        return problem(
            500,
            "internal error",
            "an unexpected error occurred; nothing was granted",
            instance=request.url.path,
        )
