"""Pages from the packaged Jinja2 templates, with the values every page needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from gateway.clock import as_utc
from gateway.console.sessions import SignedIn
from gateway.identity.principal import Role

BASE = "/console"
_TEMPLATES = Path(__file__).parent / "templates"

environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_TEMPLATES),
    autoescape=True,  # every value a client or a token supplied is escaped
    undefined=jinja2.StrictUndefined,  # a misspelt name is an error, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


def utc_time(value: datetime | str | None) -> str:
    """An instant as the console shows it everywhere: UTC, to the second, zone named."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


environment.filters["utc"] = utc_time


def page(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values``, the signed-in viewer and the CSRF token."""
    viewer: SignedIn | None = getattr(request.state, "viewer", None)
    roles = viewer.principal.roles if viewer is not None else frozenset()
    html = environment.get_template(template).render(
        base=BASE,
        viewer=viewer,
        reviewer=bool(roles & {Role.SECURITY, Role.ADMIN}),  # the nav leads somewhere
        admin=Role.ADMIN in roles,
        csrf=viewer.csrf if viewer is not None else "",
        path=request.url.path,
        **values,
    )
    return HTMLResponse(html, status_code=status)
