"""Admins' doors and limits: exemptions under the two-person rule, and quotas."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter

from gateway.api.deps import Admin, ContextDep, ServicesDep
from gateway.api.schemas import ExemptionBody, QuotaBody, RejectBody
from gateway.exemptions import Proposal
from gateway.quotas import Limits

router = APIRouter()


@router.get("/v1/exemptions")
def list_exemptions(_admin: Admin, services: ServicesDep) -> dict[str, Any]:
    return {"exemptions": services.exemptions.list()}


@router.post("/v1/exemptions", status_code=201)
def propose_exemption(
    body: ExemptionBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    proposal = Proposal(
        body.org,
        body.kind,
        body.reference,
        body.countries,
        body.models,
        body.until,
        body.reason,
        conditions=body.conditions,
        valid_from=body.valid_from,
    )
    return services.exemptions.propose(admin, proposal, context)


@router.post("/v1/exemptions/{exemption_id}/approve")
def approve_exemption(
    exemption_id: str, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    return services.exemptions.approve(admin, exemption_id, context)


@router.post("/v1/exemptions/{exemption_id}/reject")
def reject_exemption(
    exemption_id: str, body: RejectBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    return services.exemptions.reject(admin, exemption_id, body.reason, context)


@router.post("/v1/exemptions/{exemption_id}/revoke")
def revoke_exemption(
    exemption_id: str, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    return services.exemptions.revoke(admin, exemption_id, context)


@router.put("/v1/quotas/{scope}/{key}")
def set_quota(
    scope: Literal["org", "subject"],
    key: str,
    body: QuotaBody,
    admin: Admin,
    services: ServicesDep,
    context: ContextDep,
) -> dict[str, Any]:
    """Grants per hour and bytes per day for an organisation or a subject (null: no limit)."""
    limits = Limits(body.grants_per_hour, body.bytes_per_day)
    return services.quotas.set(admin, scope, key, limits, context)
