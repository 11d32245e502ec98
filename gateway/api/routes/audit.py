"""The audit log: entries, checkpoints, proofs, receipts and witness cosignatures."""

from __future__ import annotations

import base64
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import AfterValidator, BeforeValidator

from gateway.api.deps import SecurityReader, ServicesDep
from gateway.api.problems import problem_response, responses
from gateway.api.schemas import (
    INT64_MAX,
    AuditEntries,
    ConsistencyProof,
    CosignatureBody,
    CosignedCheckpoint,
    DateTimeParam,
    InclusionProof,
)
from gateway.audit import checkpoint
from gateway.audit.events import EVENTS
from gateway.audit.receipt import format_receipt
from gateway.audit.witness import accept_cosignature
from gateway.bootstrap import Services
from gateway.errors import NotFound

router = APIRouter(tags=["audit"])

# "+" in a query string means a space, so an offset typed straight into a URL
# (``since=2026-03-02T10:30+02:00``) arrives as "10:30 02:00". Named, rather
# than refused as merely malformed, so the reader knows to write %2B.
_OFFSET_LOST_TO_A_SPACE = re.compile(r".*\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)? \d{2}:?\d{2}")


def _offset_kept(value: object) -> object:
    if isinstance(value, str) and _OFFSET_LOST_TO_A_SPACE.fullmatch(value):
        raise ValueError(
            "must be an ISO 8601 date and time; its offset's '+' arrived as a space "
            "(in a URL, write '+' as %2B)"
        )
    return value


# Innermost validators run last, so this check comes before DateTimeParam's own.
InstantParam = Annotated[DateTimeParam, BeforeValidator(_offset_kept)]


def _registered(name: str) -> str:
    # A misspelt type would match nothing and read as "no such events happened".
    if name not in EVENTS:
        raise ValueError(f"must be an audit event type: {', '.join(EVENTS)}")
    return name


EventParam = Annotated[str, Query(max_length=64), AfterValidator(_registered)]


@router.get("/v1/audit/entries", response_model=AuditEntries, responses=responses(403, 503))
def audit_entries(
    _reader: SecurityReader,
    services: ServicesDep,
    subject: str | None = None,
    org: str | None = None,
    model: str | None = None,
    event: EventParam | None = None,
    decision: Literal["allow", "deny"] | None = None,
    country: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    since: InstantParam | None = None,
    until: InstantParam | None = None,
    after: Annotated[int, Query(ge=-1, le=INT64_MAX)] = -1,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Audit entries matching every filter given (security or admin), paged by index.

    ``since`` and ``until`` compare instants: an offset is honoured and a time
    without one is UTC.

    Each entry is as stored, with its ``leaf_hash``, so a reader can check it
    against the log's signed checkpoints. ``next_after`` pages on.
    """
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


@router.get(
    "/v1/audit/entries/{index}/raw",
    response_class=Response,
    response_description="The entry's canonical JSON bytes, exactly as hashed into the log.",
    responses={200: {"content": {"application/json": {}}}, **responses(403, 404, 503)},
)
def audit_entry_raw(
    _reader: SecurityReader,
    services: ServicesDep,
    index: Annotated[int, Path(ge=0, le=INT64_MAX)],
) -> Response:
    """One entry's exact bytes (security or admin): its leaf hash is SHA-256(0x00 || body).

    A verifier hashes what it received and checks it against an inclusion
    proof, without re-canonicalising a parsed copy.
    """
    stored = services.audit.entry(index)
    return Response(
        stored.entry,
        media_type="application/json",
        headers={"Weightgate-Leaf-Hash": stored.leaf_hash.hex()},
    )


@router.get(
    "/v1/audit/checkpoint",
    response_class=PlainTextResponse,
    response_description="A c2sp.org/tlog-checkpoint note, with witness cosignatures.",
    responses=responses(404, 503),
)
def audit_checkpoint(services: ServicesDep) -> str:
    """The latest signed checkpoint of the audit log (404 while the log has none)."""
    note = services.audit.latest_checkpoint()
    if note is None:
        raise NotFound("the audit log is empty")
    return note


@router.get(
    "/v1/audit/proofs/inclusion", response_model=InclusionProof, responses=responses(404, 503)
)
def inclusion_proof(
    services: ServicesDep,
    index: Annotated[int, Query(ge=0, le=INT64_MAX)],
    size: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
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


@router.get(
    "/v1/audit/proofs/consistency",
    response_model=ConsistencyProof,
    responses=responses(404, 503),
)
def consistency_proof(
    services: ServicesDep,
    start: Annotated[int, Query(alias="from", ge=0, le=INT64_MAX)],
    end: Annotated[int, Query(alias="to", ge=0, le=INT64_MAX)],
) -> dict[str, Any]:
    """The RFC 9162 consistency proof that the tree of ``to`` extends the tree of ``from``.

    ``from`` must be at least 1 (from the empty tree there is nothing to
    prove: 422); a ``to`` past the log's end is 404.
    """
    path = services.audit.consistency_proof(start, end)
    return {"from": start, "to": end, "proof": [base64.b64encode(h).decode() for h in path]}


@router.get(
    "/v1/audit/receipts/{index}",
    response_class=PlainTextResponse,
    response_description="A c2sp.org/tlog-proof receipt.",
    responses={
        404: problem_response(
            404,
            "No such entry; or ``not_yet_covered``: no signed checkpoint covers it yet "
            "(``Retry-After``).",
            retry_after=True,
        ),
        **responses(503),
    },
)
def receipt(services: ServicesDep, index: Annotated[int, Path(ge=0, le=INT64_MAX)]) -> str:
    """A c2sp.org/tlog-proof receipt for one entry, tied to the latest signed checkpoint.

    An entry committed since the last checkpoint answers 404 ``not_yet_covered``
    with ``Retry-After`` (the publication interval), not a missing entry.
    """
    note, _, path = services.audit.receipt_material(index)
    return format_receipt(index, path, note)


@router.post(
    "/v1/audit/cosignatures",
    response_model=CosignedCheckpoint,
    responses=responses(403, 404, 503),
)
def add_cosignature(
    body: CosignatureBody, _reader: SecurityReader, services: ServicesDep
) -> dict[str, Any]:
    """A witness's cosignature on the checkpoint of ``size`` (security or admin).

    It is kept only if a configured witness's key verifies it (else 422).
    """
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
