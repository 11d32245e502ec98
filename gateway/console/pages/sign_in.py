"""Signing in and out: through an issuer's OIDC console client, or a pasted development token.

Either way the token is verified exactly as the API verifies one, so the
console's roles are the API's, and a refused token is audited as there.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
import jwt
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import ContextDep, ServicesDep, record_refusal
from gateway.audit.events import RequestContext
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
from gateway.console.oidc import SignInFailed, authorization_url, check_id_token, exchange_code
from gateway.console.rendering import page
from gateway.console.sessions import SIGN_IN_WINDOW, SignInUnderWay
from gateway.errors import Unauthenticated
from gateway.identity.issuers import ConsoleClient, TrustedIssuer
from gateway.identity.principal import Principal
from gateway.names import is_printable

router = APIRouter()

# Before there is a session there is no session CSRF token: the sign-in form
# carries a random value that must equal this cookie's (double submit).
FORM_COOKIE = "weightgate_console_form"
# Binds an OIDC sign-in's state to the browser that began it (RFC 6749, 10.12):
# a callback carrying someone else's code and state finds no matching cookie.
STATE_COOKIE = "weightgate_console_oidc"
STATE_COOKIE_PATH = "/console/sign-in"
CALLBACK_PATH = "/console/sign-in/callback"
# What an identity provider's error parameter says, as the page words it.
_PROVIDER_ERROR_STATUS = {"server_error": 502, "temporarily_unavailable": 503}


@dataclass(frozen=True)
class Provider:
    """A "Sign in with" link on the sign-in page."""

    name: str
    href: str


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
        providers=_providers(services, return_to),
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
        record_refusal(services, context, request, refusal, token)
        return _sign_in_page(request, services, return_to, error=refusal.message, status=401)
    response = RedirectResponse(return_to, status_code=303)
    _open_session(request, services, principal, token, response)
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


def _console_clients(services: Services) -> dict[str, tuple[TrustedIssuer, ConsoleClient]]:
    return {
        issuer.issuer: (issuer, issuer.console)
        for issuer in services.verifier.issuers
        if issuer.console is not None
    }


def _providers(services: Services, return_to: str) -> list[Provider]:
    return [
        Provider(name, "/console/sign-in/oidc?" + urlencode({"issuer": name, "next": return_to}))
        for name in _console_clients(services)
    ]


def _redirect_uri(services: Services) -> str:
    return services.settings.url.rstrip("/") + CALLBACK_PATH


def _failure(request: Request, failed: SignInFailed, *, forget_state: bool = True) -> HTMLResponse:
    response = page(
        request, "error.html", status=failed.status, title=failed.title, detail=failed.detail
    )
    if forget_state:
        response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


@router.get("/sign-in/oidc", response_class=HTMLResponse)
def start_oidc_sign_in(
    request: Request,
    services: ServicesDep,
    issuer: Annotated[str, Query(max_length=512)],
    next_page: Annotated[str | None, Query(alias="next", max_length=512)] = None,
) -> Response:
    """Off to the issuer's authorization endpoint, with state, nonce and a PKCE challenge."""
    configured = _console_clients(services).get(issuer)
    if configured is None:
        return _failure(
            request,
            SignInFailed(
                400,
                "No such sign-in",
                "That issuer offers no console sign-in here. Pick one on the sign-in page.",
            ),
        )
    _, client = configured
    state, under_way = console_sessions(request).begin_sign_in(issuer, _next(next_page))
    response = RedirectResponse(
        authorization_url(client, _redirect_uri(services), state, under_way), status_code=303
    )
    # SameSite=Lax, not Strict: the provider's redirect back is a cross-site
    # navigation, and a Strict cookie would not come with it. Lax still keeps
    # it off cross-site subrequests and posts; it holds only the state.
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(SIGN_IN_WINDOW.total_seconds()),
        path=STATE_COOKIE_PATH,
        secure=uses_tls(services),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(CALLBACK_PATH.removeprefix("/console"), response_class=HTMLResponse)
def finish_oidc_sign_in(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    *,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=128)] = None,
    error: Annotated[str | None, Query(max_length=128)] = None,
    error_description: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """The provider's redirect back: checked, exchanged and verified, or an error page."""
    try:
        under_way = _sign_in_under_way(request, state)
    except SignInFailed as failed:
        # The state cookie stays: a forged callback pushed into this browser
        # must not end the sign-in it has under way.
        return _failure(request, failed, forget_state=False)
    try:
        return _finish(
            request, services, context, under_way, code=code, error=(error, error_description)
        )
    except SignInFailed as failed:
        return _failure(request, failed)


def _finish(
    request: Request,
    services: Services,
    context: RequestContext,
    under_way: SignInUnderWay,
    *,
    code: str | None,
    error: tuple[str | None, str | None],
) -> Response:
    if error[0] is not None:
        raise _provider_refused(*error)
    if not code:
        raise SignInFailed(400, "Sign-in failed", "The identity provider sent no code back.")
    configured = _console_clients(services).get(under_way.issuer)
    if configured is None:
        raise SignInFailed(
            400, "Sign-in failed", "That issuer no longer offers console sign-in here."
        )
    issuer, client = configured
    tokens = exchange_code(
        client,
        code=code,
        redirect_uri=_redirect_uri(services),
        code_verifier=under_way.code_verifier,
    )
    token = tokens.access_token
    try:
        principal = _verified(services, issuer, token)
        if tokens.id_token is not None:
            token = tokens.id_token
            check_id_token(
                tokens.id_token,
                issuer,
                client,
                nonce=under_way.nonce,
                now=services.clock.now(),
                leeway=timedelta(seconds=services.settings.token_leeway_seconds),
            )
    except Unauthenticated as refusal:
        record_refusal(services, context, request, refusal, token)
        raise SignInFailed(401, "Sign-in refused", refusal.message) from None
    # A page, not a redirect: this request ends a cross-site redirect chain, and
    # the browser would not send the SameSite=Strict session cookie on a
    # redirect from it. From this same-site page onwards it does.
    response = page(request, "signed_in.html", return_to=under_way.return_to, who=principal.subject)
    _open_session(request, services, principal, tokens.access_token, response)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    return response


def _sign_in_under_way(request: Request, state: str | None) -> SignInUnderWay:
    """The sign-in this callback finishes: its state, this browser's cookie, taken once."""
    if not state:
        raise SignInFailed(400, "Sign-in failed", "The identity provider sent no state back.")
    bound = request.cookies.get(STATE_COOKIE, "")
    if not bound:
        raise SignInFailed(
            400,
            "Sign-in failed",
            "This browser has no sign-in under way: it took longer than "
            f"{SIGN_IN_WINDOW.total_seconds() / 60:.0f} minutes, or began in another browser. "
            "Sign in again.",
        )
    if not hmac.compare_digest(state.encode(), bound.encode()):
        raise SignInFailed(
            400, "Sign-in failed", "This sign-in was not begun in this browser. Sign in again."
        )
    under_way = console_sessions(request).finish_sign_in(state)
    if under_way is None:
        raise SignInFailed(
            400,
            "Sign-in failed",
            "This sign-in is unknown, expired, or was already used. Sign in again.",
        )
    return under_way


def _provider_refused(error: str | None, description: str | None) -> SignInFailed:
    shown = error if error and error.isascii() and is_printable(error) else "an unreadable error"
    detail = f"It answered {shown}"
    if description and is_printable(description):
        detail += f": {description}"
    return SignInFailed(
        _PROVIDER_ERROR_STATUS.get(error or "", 401),
        "The identity provider did not sign you in",
        detail + ". Nobody was signed in.",
    )


def _verified(services: Services, issuer: TrustedIssuer, token: str) -> Principal:
    """The access token, verified as the API verifies it, and from the issuer signed in with."""
    principal = services.verifier.verify(token)
    # Another trusted issuer's token, handed back by this one, is not this sign-in's.
    if principal.issuer != issuer.issuer:
        raise Unauthenticated("the access token is not from the issuer signed in with")
    return principal


def _open_session(
    request: Request, services: Services, principal: Principal, token: str, response: Response
) -> None:
    """A session for a verified ``token``, ending with it; its cookie set on ``response``."""
    # Verified already, so its expiry is a checked integer.
    claims = jwt.decode(token, options={"verify_signature": False})
    secret, opened = console_sessions(request).open(
        principal, datetime.fromtimestamp(claims["exp"], tz=UTC)
    )
    set_session_cookie(response, services, secret, opened.expires_at - services.clock.now())
