"""The console's overview page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.console.auth import Reviewer
from gateway.console.rendering import page

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, _viewer: Reviewer) -> HTMLResponse:
    return page(request, "placeholder.html", title="overview")
