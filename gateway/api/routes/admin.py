"""Admins' doors and limits: exemptions under the two-person rule, and quotas."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from gateway.api.deps import Admin, ContextDep, ServicesDep
from gateway.api.problems import responses
from gateway.api.schemas import (
    ExemptionBody,
    ExemptionList,
    ExemptionView,
    QuotaBody,
    QuotaView,
    RejectBody,
)
from gateway.quotas import Limits

router = APIRouter()


@router.get(
    "/v1/exemptions",
    tags=["exemptions"],
    response_model=ExemptionList,
    responses=responses(403, 503),
)
def list_exemptions(_admin: Admin, services: ServicesDep) -> dict[str, Any]:
    """Every exemption (admin), in the order proposed, with its approvals and status."""
    return {"exemptions": services.exemptions.list()}


@router.post(
    "/v1/exemptions",
    status_code=201,
    tags=["exemptions"],
    response_model=ExemptionView,
    responses=responses(403, 404, 503),
)
def propose_exemption(
    body: ExemptionBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Propose an exemption (an export license or a validated end user); audited.

    It is pending until a different admin approves it, and only a license can
    cover a Tier 3 country.
    """
    return services.exemptions.propose(admin, body.proposal(), context)


@router.post(
    "/v1/exemptions/{exemption_id}/approve",
    tags=["exemptions"],
    response_model=ExemptionView,
    responses=responses(403, 404, 409, 503),
)
def approve_exemption(
    exemption_id: str, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Approve a pending exemption (an admin other than its proposer); audited."""
    return services.exemptions.approve(admin, exemption_id, context)


@router.post(
    "/v1/exemptions/{exemption_id}/reject",
    tags=["exemptions"],
    response_model=ExemptionView,
    responses=responses(403, 404, 409, 503),
)
def reject_exemption(
    exemption_id: str, body: RejectBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Reject a pending exemption, with a reason (admin); audited."""
    return services.exemptions.reject(admin, exemption_id, body.reason, context)


@router.post(
    "/v1/exemptions/{exemption_id}/revoke",
    tags=["exemptions"],
    response_model=ExemptionView,
    responses=responses(403, 404, 409, 503),
)
def revoke_exemption(
    exemption_id: str, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Revoke an exemption (admin); grants that rest on it stop at once. Audited."""
    return services.exemptions.revoke(admin, exemption_id, context)


@router.put(
    "/v1/quotas/{scope}/{key}",
    tags=["quotas"],
    response_model=QuotaView,
    responses=responses(403, 503),
)
def set_quota(
    scope: Literal["org", "subject"],
    key: str,
    body: QuotaBody,
    admin: Admin,
    services: ServicesDep,
    context: ContextDep,
) -> dict[str, Any]:
    """Grants per hour and bytes per day for an organisation or a subject (null: no limit); audited.

    Beyond them, a grant is refused with 429 and ``Retry-After``.
    """
    limits = Limits(body.grants_per_hour, body.bytes_per_day)
    return services.quotas.set(admin, scope, key, limits, context)
