"""Who is looking at the console: the session cookie, the roles a page needs, and CSRF.

Roles are the API's: every page needs the security or admin role, and what
changes exemptions or grants needs admin, exactly as the API route it stands
for. A form is read only after its sender's session is found, and only if it
carries that session's CSRF token.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import parse_qsl, quote

from fastapi import Depends, Request
from fastapi.responses import Response

from gateway.bootstrap import Services
from gateway.console.sessions import ConsoleSessions, SignedIn
from gateway.errors import InvalidInput
from gateway.identity.principal import Role

SESSION_COOKIE = "weightgate_console"
COOKIE_PATH = "/console"
# The largest form the console has (an exemption proposal) is well under this;
# the gateway refuses any body over 16 KiB before it is read.
MAX_FORM_FIELDS = 32
MAX_FIELD_CHARS = 4096


class SignInNeeded(Exception):
    """No open session: the viewer is sent to sign in, and back to ``return_to`` after."""

    def __init__(self, return_to: str) -> None:
        super().__init__(return_to)
        self.return_to = return_to


class Refused(Exception):
    """Signed in, but without the role this page needs: a refusal page, 403."""

    def __init__(self, signed_in: SignedIn, needs: str) -> None:
        super().__init__(needs)
        self.signed_in = signed_in
        self.needs = needs


class CsrfRefused(Exception):
    """A state-changing form without its session's CSRF token: refused, 403, nothing done."""


def console_sessions(request: Request) -> ConsoleSessions:
    sessions: ConsoleSessions = request.app.state.console_sessions
    return sessions


def uses_tls(services: Services) -> bool:
    return services.settings.url.lower().startswith("https://")


def set_session_cookie(
    response: Response, services: Services, secret: str, lasts: timedelta
) -> None:
    # HttpOnly: no script reads it. SameSite=Strict: no other site's page can
    # send it. Secure whenever the gateway's public URL is https. Max-Age, not
    # Expires: the browser's clock need not agree with ours.
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=max(int(lasts.total_seconds()), 0),
        path=COOKIE_PATH,
        secure=uses_tls(services),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(response: Response, services: Services) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        secure=uses_tls(services),
        httponly=True,
        samesite="strict",
    )


def return_path(request: Request) -> str:
    """Where to come back to after signing in: this console page (never another site)."""
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target if is_console_path(target) else "/console/"


def is_console_path(target: str) -> bool:
    # "/console/..." on this host only: not "//evil", not "/console/../v1", not a scheme.
    return (
        target.startswith("/console/")
        and "//" not in target
        and "\\" not in target
        and ".." not in target
        and len(target) <= 512
        and target.isprintable()
    )


def sign_in_url(return_to: str) -> str:
    return "/console/sign-in?next=" + quote(return_to, safe="/")


def signed_in(request: Request) -> SignedIn:
    """The open session the request's cookie names; otherwise off to sign in."""
    secret = request.cookies.get(SESSION_COOKIE, "")
    found = console_sessions(request).find(secret) if secret else None
    if found is None:
        raise SignInNeeded(return_path(request))
    request.state.viewer = found
    request.state.subject = found.principal.subject  # for the access log
    return found


SignedInDep = Annotated[SignedIn, Depends(signed_in)]


def _reviewer(viewer: SignedInDep) -> SignedIn:
    if not viewer.principal.has_any(Role.SECURITY, Role.ADMIN):
        raise Refused(viewer, "the security or admin role")
    return viewer


def _admin(viewer: SignedInDep) -> SignedIn:
    if not viewer.principal.has_any(Role.ADMIN):
        raise Refused(viewer, "the admin role")
    return viewer


Reviewer = Annotated[SignedIn, Depends(_reviewer)]
ConsoleAdmin = Annotated[SignedIn, Depends(_admin)]


@dataclass(frozen=True)
class Form:
    """A posted form's fields, each one value; ``text`` and ``optional`` read them checked."""

    fields: dict[str, str]

    def text(self, name: str, *, max_chars: int = 200) -> str:
        value = self.fields.get(name, "").strip()
        if not value:
            raise InvalidInput(f"{name.replace('_', ' ')} is required")
        return self._checked(name, value, max_chars)

    def optional(self, name: str, *, max_chars: int = 200) -> str | None:
        value = self.fields.get(name, "").strip()
        return self._checked(name, value, max_chars) if value else None

    @staticmethod
    def _checked(name: str, value: str, max_chars: int) -> str:
        if len(value) > max_chars:
            raise InvalidInput(f"{name.replace('_', ' ')} may be at most {max_chars} characters")
        if not all(c.isprintable() or c in "\n\t" for c in value):
            raise InvalidInput(f"{name.replace('_', ' ')} holds characters that cannot be shown")
        return value


async def read_form(request: Request) -> Form:
    """The url-encoded body; a repeated or oversized field is refused as malformed input."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidInput("forms are posted as application/x-www-form-urlencoded")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=MAX_FORM_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the form is not valid url-encoded UTF-8") from None
    fields: dict[str, str] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidInput(f"the form names {name!r} twice")
        if len(value) > MAX_FIELD_CHARS:
            raise InvalidInput(f"the form's {name!r} is too long")
        fields[name] = value
    return Form(fields)


def check_csrf(form: Form, expected: str) -> None:
    if not hmac.compare_digest(form.fields.get("csrf", "").encode(), expected.encode()):
        raise CsrfRefused


async def _reviewer_form(request: Request, viewer: Reviewer) -> Form:
    form = await read_form(request)
    check_csrf(form, viewer.csrf)
    return form


async def _admin_form(request: Request, viewer: ConsoleAdmin) -> Form:
    form = await read_form(request)
    check_csrf(form, viewer.csrf)
    return form


# A posted form from a signed-in reviewer (or admin), its CSRF token checked.
ReviewerForm = Annotated[Form, Depends(_reviewer_form)]
AdminForm = Annotated[Form, Depends(_admin_form)]
