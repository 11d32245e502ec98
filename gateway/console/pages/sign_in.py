"""Signing in and out: a pasted token for the development issuer (OIDC lives in ``oidc``)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Annotated

import anyio.to_thread
import jwt
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import ContextDep, ServicesDep
from gateway.audit.events import RequestContext, keyed_hash
from gateway.bootstrap import Services
from gateway.console.auth import (
    COOKIE_PATH,
    SESSION_COOKIE,
    Form,
    SignedInDep,
    check_csrf,
    clear_session_cookie,
    console_sessions,
    is_console_path,
    read_form,
    set_session_cookie,
    uses_tls,
)
from gateway.console.rendering import page
from gateway.errors import Unauthenticated

router = APIRouter()

# Before there is a session there is no session CSRF token: the sign-in form
# carries a random value that must equal this cookie's (double submit).
FORM_COOKIE = "weightgate_console_form"


def _next(target: str | None) -> str:
    return target if target and is_console_path(target) else "/console/"


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(
    request: Request,
    services: ServicesDep,
    next_page: Annotated[str | None, Query(alias="next", max_length=512)] = None,
) -> HTMLResponse:
    return _sign_in_page(request, services, _next(next_page))


def _sign_in_page(
    request: Request, services: Services, return_to: str, *, error: str = "", status: int = 200
) -> HTMLResponse:
    form_secret = secrets.token_urlsafe(32)
    response = page(
        request,
        "sign_in.html",
        status=status,
        return_to=return_to,
        form_secret=form_secret,
        token_form=services.dev_issuer_trusted,
        providers=[],  # filled by ``oidc`` when an issuer has a console client
        error=error,
    )
    response.set_cookie(
        FORM_COOKIE,
        form_secret,
        max_age=600,
        path=COOKIE_PATH,
        secure=uses_tls(services),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/sign-in/token", response_class=HTMLResponse)
async def sign_in_with_token(
    request: Request, services: ServicesDep, context: ContextDep
) -> Response:
    """A pasted token, verified exactly as the API verifies one; a refusal is audited as there."""
    form = await read_form(request)
    check_csrf(form, request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(32))
    if not services.dev_issuer_trusted:
        raise Unauthenticated("this gateway signs in only through its identity provider")
    return await anyio.to_thread.run_sync(_open_with_token, request, services, context, form)


def _open_with_token(
    request: Request, services: Services, context: RequestContext, form: Form
) -> Response:
    return_to = _next(form.fields.get("next"))
    token = form.fields.get("token", "").strip()
    try:
        principal = services.verifier.verify(token)
    except Unauthenticated as refusal:
        services.rejections.record(
            context,
            refusal.message,
            {
                "method": request.method,
                "path": request.url.path,
                "token": keyed_hash(services.keys.audit_hmac, token) if token else None,
            },
        )
        return _sign_in_page(request, services, return_to, error=refusal.message, status=401)
    # Verified above, so its expiry is a checked integer.
    claims = jwt.decode(token, options={"verify_signature": False})
    secret, opened = console_sessions(request).open(
        principal, datetime.fromtimestamp(claims["exp"], tz=UTC)
    )
    response = RedirectResponse(return_to, status_code=303)
    set_session_cookie(response, services, secret, opened.expires_at - services.clock.now())
    response.delete_cookie(FORM_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, viewer: SignedInDep, services: ServicesDep) -> Response:
    form = await read_form(request)
    check_csrf(form, viewer.csrf)
    secret = request.cookies.get(SESSION_COOKIE, "")
    await anyio.to_thread.run_sync(console_sessions(request).close, secret)
    response = RedirectResponse("/console/sign-in", status_code=303)
    clear_session_cookie(response, services)
    return response
