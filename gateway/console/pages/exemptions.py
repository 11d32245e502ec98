"""The console's exemptions page: the queue under the two-person rule, and the admin's actions.

Everything here is the admin-only ``/v1/exemptions`` API in another form: the
same roles, the same body model for a proposal, the same service methods, so
every step is audited exactly as the API audits it. The page only hides the
approve button from a proposal's own proposer; the service refuses that
approval whoever sends it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from gateway.api.deps import ContextDep, ServicesDep
from gateway.api.problems import status_of
from gateway.api.schemas import ExemptionBody, RejectBody
from gateway.bootstrap import Services
from gateway.console.auth import AdminForm, ConsoleAdmin, Form
from gateway.console.rendering import page
from gateway.errors import InvalidInput, NotFound

router = APIRouter()

# The only notices a redirect may ask for: a key from the URL picks one of
# these, so nothing a link carries is ever shown as text.
DONE = {
    "proposed": "Proposed. It waits for another admin's approval.",
    "approved": "Approval recorded.",
    "rejected": "Rejected, with the reason recorded.",
    "revoked": "Revoked. Grants that rest on it stop at once.",
}
Done = Literal["proposed", "approved", "rejected", "revoked"]
_ORDER = ("pending", "approved", "expired", "rejected", "revoked")
# Form fields that hold lists: one item per comma or line.
_LISTS = ("countries", "models")
_FIELDS = ("org", "kind", "reference", "until", "reason", "conditions", "valid_from")
# The service issues 32 hex digits; anything else in the path is refused before a lookup.
ExemptionId = Annotated[str, Path(min_length=1, max_length=64, pattern="^[0-9a-f]+$")]


@router.get("/exemptions", response_class=HTMLResponse)
def exemptions_page(
    request: Request,
    _viewer: ConsoleAdmin,
    services: ServicesDep,
    done: Annotated[Done | None, Query()] = None,
) -> HTMLResponse:
    return _page(request, services, notice=DONE[done] if done else None)


@router.post("/exemptions", response_class=HTMLResponse)
def propose(
    request: Request,
    viewer: ConsoleAdmin,
    form: AdminForm,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Validated by the API's own body model; a refusal re-shows the form with why (4xx)."""
    try:
        body = ExemptionBody.model_validate(_body_of(form))
    except ValidationError as invalid:
        problems = [_problem(issue) for issue in invalid.errors()]
        return _page(request, services, problems=problems, entered=form.fields, status=422)
    try:
        services.exemptions.propose(viewer.principal, body.proposal(), context)
    except (InvalidInput, NotFound) as refused:
        # The service's own checks (a country, a tier, a model): shown beside what was typed.
        return _page(
            request,
            services,
            problems=[refused.message],
            entered=form.fields,
            status=status_of(refused),
        )
    return _back("proposed")


@router.post("/exemptions/{exemption_id}/approve")
def approve(
    exemption_id: ExemptionId,
    viewer: ConsoleAdmin,
    _form: AdminForm,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    services.exemptions.approve(viewer.principal, exemption_id, context)
    return _back("approved")


@router.post("/exemptions/{exemption_id}/reject")
def reject(
    exemption_id: ExemptionId,
    viewer: ConsoleAdmin,
    form: AdminForm,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    # The API's body model, so the console accepts no reason the API would refuse.
    try:
        body = RejectBody.model_validate({"reason": form.fields.get("reason", "").strip()})
    except ValidationError as invalid:
        raise InvalidInput("; ".join(_problem(i) for i in invalid.errors())) from None
    services.exemptions.reject(viewer.principal, exemption_id, body.reason, context)
    return _back("rejected")


@router.post("/exemptions/{exemption_id}/revoke")
def revoke(
    exemption_id: ExemptionId,
    viewer: ConsoleAdmin,
    _form: AdminForm,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    services.exemptions.revoke(viewer.principal, exemption_id, context)
    return _back("revoked")


def _page(
    request: Request,
    services: Services,
    *,
    notice: str | None = None,
    problems: list[str] | None = None,
    entered: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    everything = services.exemptions.list()
    pending_for = timedelta(days=services.settings.exemption_pending_days)
    for exemption in everything:
        proposed_at = datetime.fromisoformat(exemption["proposed_at"])
        exemption["pending_until"] = (proposed_at + pending_for).isoformat()
    pending = sorted(
        (e for e in everything if e["status"] == "pending"), key=lambda e: e["proposed_at"]
    )
    others = sorted(
        (e for e in everything if e["status"] != "pending"),
        key=lambda e: (_ORDER.index(e["status"]), _negated(e["proposed_at"])),
    )
    return page(
        request,
        "exemptions.html",
        status=status,
        title="Exemptions",
        pending=pending,
        others=others,
        approvals_needed=services.settings.exemption_approvals,
        pending_days=services.settings.exemption_pending_days,
        orgs=[org.id for org in services.catalog.orgs()],
        notice=notice,
        problems=problems or [],
        entered=entered or {},
        today=services.clock.now().date().isoformat(),
    )


def _body_of(form: Form) -> dict[str, Any]:
    """The form's fields as the API's JSON body: lists split, empty optional fields left out."""
    body: dict[str, Any] = {}
    for name in _FIELDS:
        value = form.fields.get(name, "").strip()
        if value or name not in ("conditions", "valid_from"):
            body[name] = value
    for name in _LISTS:
        raw = form.fields.get(name, "").replace("\n", ",")
        body[name] = [item.strip() for item in raw.split(",") if item.strip()]
    return body


def _problem(issue: ErrorDetails) -> str:
    where = ".".join(str(part) for part in issue.get("loc", ()))
    return f"{where.replace('_', ' ')}: {issue.get('msg', 'invalid')}"


def _negated(timestamp: str) -> float:
    """Newest first within a status."""
    return -datetime.fromisoformat(timestamp).timestamp()


def _back(done: Done) -> RedirectResponse:
    return RedirectResponse(f"/console/exemptions?done={done}", status_code=303)
