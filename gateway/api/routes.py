"""The routes of the contract. Each one reads as: who may call it, what it asks a service."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, PlainTextResponse, RedirectResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.api.deps import Admin, ContextDep, PrincipalDep, SecurityReader, ServicesDep
from gateway.api.schemas import (
    CosignatureBody,
    ExemptionBody,
    ExplainBody,
    GrantBody,
    OrgBody,
    OrgChange,
    QuotaBody,
    RejectBody,
    ReloadBody,
)
from gateway.audit import checkpoint
from gateway.audit.receipt import format_receipt
from gateway.audit.witness import accept_cosignature
from gateway.bootstrap import Services
from gateway.catalog import OrgView
from gateway.context.policy_source import pack_summary
from gateway.errors import NotFound
from gateway.exemptions import Proposal
from gateway.policy.explain import explain
from gateway.quotas import Limits
from gateway.service import GrantRequest
from gateway.storage.local import BLOB_ROUTE, LocalBlobStore

router = APIRouter()


@router.post("/v1/grants", status_code=201)
def create_grant(
    body: GrantBody, principal: PrincipalDep, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    request = GrantRequest(
        body.model,
        body.revision,
        body.files,
        body.recipient_key,
        body.recipient_kem,
        include=tuple(body.include),
        exclude=tuple(body.exclude),
    )
    return services.grants.request_grant(principal, request, context).body


@router.get("/v1/grants/{grant_id}")
def get_grant(grant_id: str, principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
    return services.grants.grant_status(principal, grant_id)


@router.delete("/v1/grants/{grant_id}")
def revoke_grant(
    grant_id: str, principal: PrincipalDep, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    return services.grants.revoke(principal, grant_id, context)


@router.get("/v1/grants/{grant_id}/files/{path:path}", status_code=307)
def grant_file(
    grant_id: str,
    path: str,
    services: ServicesDep,
    context: ContextDep,
    cap: Annotated[str, Query(max_length=128)] = "",
) -> RedirectResponse:
    url = services.grants.storage_redirect(grant_id, path, cap, context)
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


@router.get(BLOB_ROUTE + "{key:path}")
def blob(
    key: str,
    services: ServicesDep,
    v: Annotated[str, Query(max_length=128)],
    exp: Annotated[int, Query(ge=0)],
    sig: Annotated[str, Query(max_length=128)],
) -> FileResponse:
    if not isinstance(services.blobs, LocalBlobStore):
        raise NotFound("this gateway does not serve blobs itself")
    path = services.blobs.open_signed(key, v, exp, sig)
    return FileResponse(path, media_type="application/octet-stream")


@router.get("/v1/models")
def list_models(_principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
    return {
        "models": [
            {
                "id": m.id,
                "eccn": m.eccn.value,
                "classification_basis": m.classification_basis,
                "training_ops": m.training_ops,
                "revisions": list(m.revisions),
            }
            for m in services.catalog.models()
        ]
    }


@router.post("/v1/policy/explain")
def policy_explain(
    body: ExplainBody, _principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    decision = explain(
        services.policy.current,
        country=body.country,
        org_hq=body.org_hq,
        parent_hq=body.parent_hq,
        ip_country=body.ip_country,
        eccn=body.eccn,
        on=body.at or services.clock.now().date(),
    )
    return decision.to_dict()


@router.post("/v1/policy/reload")
def policy_reload(
    body: ReloadBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Switch packs, or re-read the configured one; audited, and a bad pack changes nothing."""
    pack = services.policy.reload(context, name=body.pack, by=admin)
    return pack_summary(pack)


def _org(view: OrgView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "hq": view.hq,
        "parent_hq": view.parent_hq,
        "aliases": list(view.aliases),
    }


@router.get("/v1/orgs")
def list_orgs(_reader: SecurityReader, services: ServicesDep) -> dict[str, Any]:
    return {"orgs": [_org(view) for view in services.catalog.orgs()]}


@router.post("/v1/orgs", status_code=201)
def add_org(
    body: OrgBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    view = services.catalog.add_org(
        body.id,
        name=body.name,
        hq=body.hq,
        parent_hq=body.parent_hq,
        aliases=tuple(body.aliases),
        context=context,
        actor={"subject": admin.subject, "org": admin.org},
    )
    return _org(view)


@router.patch("/v1/orgs/{org_id}")
def update_org(
    org_id: str, body: OrgChange, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    view = services.catalog.update_org(
        org_id,
        name=body.name,
        hq=body.hq,
        parent_hq=body.parent_hq,
        clear_parent="parent_hq" in body.model_fields_set and body.parent_hq is None,
        aliases=tuple(body.aliases) if body.aliases is not None else None,
        actor={"subject": admin.subject, "org": admin.org},
        context=context,
    )
    return _org(view)


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


@router.get("/v1/audit/entries")
def audit_entries(
    _reader: SecurityReader,
    services: ServicesDep,
    subject: str | None = None,
    org: str | None = None,
    model: str | None = None,
    event: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[int, Query(ge=-1)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    rows = services.audit.query(
        subject=subject,
        org=org,
        model=model,
        event=event,
        decision=decision,
        country=country.upper() if country else None,
        tier=tier,
        since=since,
        until=until,
        after=after,
        limit=limit,
    )
    return {
        "entries": [{**r.as_dict(), "leaf_hash": r.leaf_hash.hex()} for r in rows],
        "next_after": rows[-1].index if len(rows) == limit else None,
    }


@router.get("/v1/audit/checkpoint", response_class=PlainTextResponse)
def audit_checkpoint(services: ServicesDep) -> str:
    note = services.audit.latest_checkpoint()
    if note is None:
        raise NotFound("the audit log is empty")
    return note


@router.get("/v1/audit/proofs/inclusion")
def inclusion_proof(
    services: ServicesDep,
    index: Annotated[int, Query(ge=0)],
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The audit path of entry ``index`` in the tree of ``size`` (default: the latest signed)."""
    note = _signed_note(services, size)
    signed = checkpoint.verify(note, services.audit.origin, services.keys.audit_signer.public_key())
    leaf, path = services.audit.inclusion_proof(index, signed.size)
    return {
        "index": index,
        "size": signed.size,
        "leaf_hash": leaf.hex(),
        "proof": [base64.b64encode(h).decode() for h in path],
        "checkpoint": note,
    }


@router.get("/v1/audit/proofs/consistency")
def consistency_proof(
    services: ServicesDep,
    start: Annotated[int, Query(alias="from", ge=0)],
    end: Annotated[int, Query(alias="to", ge=0)],
) -> dict[str, Any]:
    path = services.audit.consistency_proof(start, end)
    return {"from": start, "to": end, "proof": [base64.b64encode(h).decode() for h in path]}


@router.get("/v1/audit/receipts/{index}", response_class=PlainTextResponse)
def receipt(services: ServicesDep, index: int) -> str:
    """A c2sp.org/tlog-proof receipt for one entry, tied to the latest signed checkpoint."""
    note = _signed_note(services, None)
    signed = checkpoint.verify(note, services.audit.origin, services.keys.audit_signer.public_key())
    _, path = services.audit.inclusion_proof(index, signed.size)
    return format_receipt(index, path, note)


@router.post("/v1/audit/cosignatures")
def add_cosignature(
    body: CosignatureBody, _reader: SecurityReader, services: ServicesDep
) -> dict[str, Any]:
    note = accept_cosignature(
        services.audit.checkpoints, services.witnesses, body.size, body.cosignature
    )
    return {"size": body.size, "checkpoint": note}


def _signed_note(services: Services, size: int | None) -> str:
    note = (
        services.audit.latest_checkpoint()
        if size is None
        else services.audit.checkpoints.note_at(size)
    )
    if note is None:
        raise NotFound("no signed checkpoint of that size" if size else "the audit log is empty")
    return note


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(services: ServicesDep) -> dict[str, str]:
    return services.check_ready()


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
