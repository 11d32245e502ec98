"""The audit log: entries, checkpoints, proofs, receipts and witness cosignatures."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from gateway.api.deps import SecurityReader, ServicesDep
from gateway.api.schemas import CosignatureBody
from gateway.audit import checkpoint
from gateway.audit.receipt import format_receipt
from gateway.audit.witness import accept_cosignature
from gateway.bootstrap import Services
from gateway.errors import NotFound

router = APIRouter()


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
