"""The only place domain errors become HTTP statuses: RFC 9457 problem+json, sent and documented."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import fastapi.routing
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway import errors
from gateway.api.deps import get_principal
from gateway.api.middleware import MAX_BODY_BYTES
from gateway.api.schemas import PROBLEM_MEDIA_TYPE, Problem, ValidationIssue

_log = logging.getLogger(__name__)

STATUS: dict[type[errors.WeightgateError], int] = {
    errors.InvalidInput: 422,
    errors.Unauthenticated: 401,
    errors.PolicyDenied: 403,
    errors.Forbidden: 403,
    errors.NotYetCovered: 404,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.IntegrityError: 422,
    errors.QuotaExceeded: 429,
    errors.Unavailable: 503,
}

# Statuses that come from the framework rather than from a route's domain:
# unknown paths and methods. Every problem body carries a code.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}

WWW_AUTHENTICATE = 'Bearer realm="weightgate", DPoP algs="ES256 EdDSA"'


def problem(body: Problem, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The response for ``body``, with the headers its members call for."""
    extra = dict(headers or {})
    if "retry_after" in body:
        extra["Retry-After"] = str(body["retry_after"])
    if body["status"] == 401:
        extra["WWW-Authenticate"] = WWW_AUTHENTICATE
    return JSONResponse(
        body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=extra or None
    )


def status_of(error: errors.WeightgateError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def _body(status: int, title: str, detail: str, instance: str, code: str) -> Problem:
    return {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "code": code,
    }


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.WeightgateError)
    async def _domain(request: Request, exc: errors.WeightgateError) -> JSONResponse:
        status = status_of(exc)
        if status == 503:
            _log.error("dependency unavailable: %s", exc.message, exc_info=exc.__cause__)
        # An adapter's message may name endpoints, buckets or paths; where it
        # does, it also gives the line a client may see.
        detail = str(exc.detail.get("public", exc.message))
        body = _body(status, exc.code.replace("_", " "), detail, request.url.path, exc.code)
        decision = exc.detail.get("decision")
        if decision is not None:
            body["reasons"] = decision["reasons"]
            body["tier"] = decision["tier"]
            body["policy"] = decision["policy"]
        if "audit_index" in exc.detail:
            body["audit_index"] = exc.detail["audit_index"]
        if "state" in exc.detail:
            body["state"] = exc.detail["state"]
        if "retry_after" in exc.detail:
            body["retry_after"] = exc.detail["retry_after"]
        if "failed" in exc.detail:
            body["failed"] = exc.detail["failed"]
        return problem(body)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = _body(
            422,
            "invalid input",
            "the request body or parameters are malformed",
            request.url.path,
            errors.InvalidInput.code,
        )
        body["errors"] = [
            ValidationIssue(loc=[str(p) for p in e.get("loc", ())], msg=str(e.get("msg", "")))
            for e in exc.errors()
        ]
        return problem(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body that is not even JSON (FastAPI's 400) is malformed input,
            # as a body of the wrong shape is: one status, 422, for both.
            body = _body(422, "invalid input", str(exc.detail), request.url.path, "invalid_input")
            return problem(body)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        body = _body(exc.status_code, "http error", str(exc.detail), request.url.path, code)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method the resource has. Starlette
            # names only those of the first route whose path matched, and a
            # path here often has one route per method.
            headers["Allow"] = ", ".join(_allowed(request.app, request.url.path))
        return problem(body, headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        _log.exception("unexpected error on %s", request.url.path)
        return problem(
            _body(
                500,
                "internal error",
                "an unexpected error occurred; nothing was granted",
                request.url.path,
                "internal",
            )
        )


# The OpenAPI document. Routes list the problems their domain can answer with
# (``responses(403, 404)``); the ones that follow from a route's shape are added
# here from the route itself, so they cannot be forgotten: 401 and the bearer
# requirement where the caller is authenticated, 413 where there is a body,
# 422 (as problem+json, not FastAPI's default) where there is any input, and
# 500 everywhere: the one answer a defect gets, still a problem+json body.

_PROBLEM_REF = "#/components/schemas/Problem"
_RETRY_AFTER = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 0},
}
_MEANING = {
    401: "No token, or one that is not trusted; the refusal is audited.",
    403: "A role is missing, or the export policy denies (``reasons``, ``tier``, ``policy``).",
    404: "Unknown, or not the caller's to see.",
    409: "Conflicts with the current state.",
    410: "Expired or revoked (``state``).",
    413: f"The request body is over {MAX_BODY_BYTES:,} bytes.",
    422: "The body or a parameter is malformed (``errors``), or the input is invalid.",
    429: "A quota is used up; ``Retry-After`` says for how long.",
    503: "A dependency (database, audit log, storage, keystore) is down; nothing was granted.",
    500: "An unexpected error (a defect, never bad input); nothing was granted.",
}
BEARER = "bearer"
SECURITY_SCHEMES = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": (
            "An access token from a trusted issuer, as `Authorization: Bearer <token>`. "
            "A sender-constrained token is presented as `Authorization: DPoP <token>` "
            "with a `DPoP` proof header (RFC 9449) over the method and public URL. "
            "A missing or untrusted token is a 401 problem, and the refusal is audited."
        ),
    }
}


def problem_response(
    status: int, description: str | None = None, *, retry_after: bool = False
) -> dict[str, Any]:
    """One documented problem+json answer; ``retry_after`` when it may carry the header."""
    entry: dict[str, Any] = {
        "description": description or _MEANING[status],
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _PROBLEM_REF}}},
    }
    headers: dict[str, Any] = {}
    if retry_after or status in (429, 503):
        headers["Retry-After"] = _RETRY_AFTER
    if status == 401:
        headers["WWW-Authenticate"] = {
            "description": "the schemes accepted",
            "schema": {"type": "string"},
        }
    if headers:
        entry["headers"] = headers
    return entry


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: the problems its domain can answer with."""
    return {status: problem_response(status) for status in statuses}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the problem type, the bearer scheme and the derived problems."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = FastAPI.openapi(app)  # built once, then cached on the app and amended in place
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    problem_schema = TypeAdapter(Problem).json_schema(
        ref_template="#/components/schemas/{model}", mode="serialization"
    )
    for name, definition in problem_schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas["Problem"] = problem_schema
    # Replaced below by the Problem type, which is what a 422 really carries.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in _api_routes(app):
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            answers: dict[str, Any] = operation.setdefault("responses", {})
            if _authenticates(route.dependant):
                operation["security"] = [{BEARER: []}]
                answers.setdefault("401", problem_response(401))
            if route.body_field is not None:
                answers.setdefault("413", problem_response(413))
            if "422" in answers and PROBLEM_MEDIA_TYPE not in answers["422"].get("content", {}):
                answers["422"] = problem_response(422)
            answers.setdefault("500", problem_response(500))
    return document


def _api_routes(app: FastAPI, *, documented_only: bool = True) -> Iterator[Any]:
    """The API routes (by default only the documented ones), as the document builder sees them.

    Recent FastAPI keeps an included router as it is and resolves each of its
    routes in context (``iter_route_contexts``); older versions copy the
    routes into the app. Either way each route has the APIRoute attributes.
    """
    in_context = getattr(fastapi.routing, "iter_route_contexts", None)
    candidates: Iterable[Any] = in_context(app.routes) if in_context is not None else app.routes
    for route in candidates:
        if isinstance(getattr(route, "original_route", route), APIRoute) and (
            route.include_in_schema or not documented_only
        ):
            yield route


def _allowed(app: FastAPI, path: str) -> list[str]:
    methods = {
        method
        for route in _api_routes(app, documented_only=False)
        if route.path_regex.match(path)
        for method in route.methods
    }
    return sorted(methods)


def _authenticates(dependant: Dependant) -> bool:
    return any(dep.call is get_principal for dep in _walk(dependant))


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)
