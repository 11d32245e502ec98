"""The audit log: filtered pages, one entry in full, its proof as evidence, and export.

Security reviewers and admins only, as ``GET /v1/audit/entries``, whose
filters these are, validated by the same types. The evidence route hands the
browser what it needs to check an entry itself (``static/verify.js``); the
page never asks it to believe a verdict the server computed.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import BeforeValidator

from gateway import __version__
from gateway.api.deps import ServicesDep
from gateway.api.routes.audit import EventParam, InstantParam
from gateway.api.schemas import INT64_MAX
from gateway.audit.events import EVENTS
from gateway.audit.export import CSV_COLUMNS, to_csv_row, to_ocsf
from gateway.audit.log import StoredEntry
from gateway.bootstrap import Services
from gateway.console.audit_view import (
    AuditFilters,
    CheckpointView,
    LogKey,
    checkpoint_view,
    pretty_entry,
    row_of,
)
from gateway.console.auth import Reviewer
from gateway.console.rendering import page
from gateway.errors import IntegrityError, NotFound, NotYetCovered

router = APIRouter()

PAGE_SIZE = 50
# An export streams in batches and stops here; the page says so. Larger
# extracts belong to ``weightgate audit query`` on the operator's side.
EXPORT_LIMIT = 100_000
_EXPORT_BATCH = 1000
_CSV_FLUSH_CHARS = 64 * 1024


def _blank_is_absent(value: object) -> object:
    # A GET form sends every field, the empty ones as "": those filter nothing.
    return None if value == "" else value


_Blank = BeforeValidator(_blank_is_absent)
_Text = Annotated[str | None, Query(max_length=200), _Blank]


def audit_filters(
    *,
    subject: _Text = None,
    org: _Text = None,
    model: _Text = None,
    event: Annotated[EventParam | None, _Blank] = None,
    decision: Annotated[Literal["allow", "deny"] | None, _Blank] = None,
    country: Annotated[
        str | None, Query(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$"), _Blank
    ] = None,
    tier: Annotated[int | None, Query(ge=1, le=3), _Blank] = None,
    since: Annotated[InstantParam | None, _Blank] = None,
    until: Annotated[InstantParam | None, _Blank] = None,
) -> AuditFilters:
    """The filters of ``GET /v1/audit/entries``, its types and bounds; an invalid one is 422."""
    return AuditFilters(subject, org, model, event, decision, country, tier, since, until)


Filters = Annotated[AuditFilters, Depends(audit_filters)]
Index = Annotated[int, Path(ge=0, le=INT64_MAX)]


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    _viewer: Reviewer,
    services: ServicesDep,
    filters: Filters,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> HTMLResponse:
    """The newest matching entries first; "Older" pages back by index."""
    rows = services.audit.query(
        **filters.query_arguments(), before=before, limit=PAGE_SIZE, newest_first=True
    )
    return page(
        request,
        "audit.html",
        title="Audit log",
        filters=filters,
        events=list(EVENTS),
        rows=[row_of(r) for r in rows],
        before=before,
        older_than=rows[-1].index if len(rows) == PAGE_SIZE and rows[-1].index > 0 else None,
        page_size=PAGE_SIZE,
        export_limit=EXPORT_LIMIT,
        checkpoint=_checkpoint(services),
        log_key=LogKey.of(services.audit.public_key),
    )


@router.get("/audit/export")
def audit_export(
    _viewer: Reviewer,
    services: ServicesDep,
    filters: Filters,
    export_format: Annotated[Literal["ocsf", "csv"], Query(alias="format")],
    after: Annotated[int, Query(ge=-1, le=INT64_MAX)] = -1,
) -> StreamingResponse:
    """The filtered view, oldest first, as the CLI exports it: OCSF JSON Lines or CSV."""
    first = services.audit.query(
        **filters.query_arguments(), after=after, limit=min(_EXPORT_BATCH, EXPORT_LIMIT)
    )
    # The first batch is read before the response starts, so a database that
    # is down is an error page rather than an empty file.
    rows = _exported(services, filters, first)
    stamp = services.clock.now().strftime("%Y%m%dT%H%M%SZ")
    if export_format == "csv":
        body, media, suffix = _csv(rows), "text/csv; charset=utf-8", "csv"
    else:
        body, media, suffix = _ocsf(rows), "application/x-ndjson", "jsonl"
    return StreamingResponse(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="weightgate-audit-{stamp}.{suffix}"',
            "Weightgate-Export-Limit": str(EXPORT_LIMIT),
        },
    )


@router.get("/audit/{index}", response_class=HTMLResponse)
def audit_entry_page(
    request: Request, _viewer: Reviewer, services: ServicesDep, index: Index
) -> HTMLResponse:
    stored = services.audit.entry(index)  # NotFound: a 404 page
    checkpoint = _checkpoint(services)
    return page(
        request,
        "audit_entry.html",
        title=f"Audit entry {index}",
        entry=row_of(stored),
        index=index,
        pretty=pretty_entry(stored.entry),
        leaf_hash=stored.leaf_hash.hex(),
        raw_bytes=len(stored.entry),
        covered=checkpoint is not None and index < checkpoint.size,
        checkpoint=checkpoint,
        log_key=LogKey.of(services.audit.public_key),
        origin=services.audit.origin,
    )


@router.get("/audit/{index}/evidence")
def audit_evidence(_viewer: Reviewer, services: ServicesDep, index: Index) -> JSONResponse:
    """What the browser needs to check entry ``index`` itself, none of it a verdict.

    The raw bytes as stored, the leaf hash the server claims for them, the
    audit path in the newest signed checkpoint's tree, that checkpoint's note
    and the log's public key. A durable entry no checkpoint covers yet is a
    status with the publication interval, not an error.
    """
    try:
        stored = services.audit.entry(index)
        note, _, path = services.audit.receipt_material(index)
    except NotFound as exc:
        return JSONResponse({"status": "not_found", "message": exc.message}, status_code=404)
    except NotYetCovered as exc:
        retry = max(1, round(services.settings.checkpoint_interval))
        return JSONResponse(
            {"status": "not_yet_covered", "message": exc.message, "retry_after": retry},
            headers={"Retry-After": str(retry)},
        )
    return JSONResponse(
        {
            "status": "covered",
            "index": index,
            "entry": base64.b64encode(stored.entry).decode(),
            "leaf_hash": stored.leaf_hash.hex(),
            "size": services.audit.checkpoints.verify(note).size,
            "proof": [base64.b64encode(h).decode() for h in path],
            "checkpoint": note,
            "origin": services.audit.origin,
            "log_key": LogKey.of(services.audit.public_key).base64,
        }
    )


def _checkpoint(services: Services) -> CheckpointView | None:
    newest = services.audit.checkpoints.newest()
    if newest is None:
        return None
    try:
        services.audit.checkpoints.verify(newest.note)
        signature_ok = True
    except IntegrityError:
        signature_ok = False
    size, _ = services.audit.tree_state()
    return checkpoint_view(
        newest,
        now=services.clock.now(),
        log_size=size,
        signature_ok=signature_ok,
        witnesses=services.witnesses,
    )


def _exported(
    services: Services, filters: AuditFilters, first: list[StoredEntry]
) -> Iterator[StoredEntry]:
    batch, sent = first, 0
    while True:
        yield from batch
        sent += len(batch)
        wanted = min(_EXPORT_BATCH, EXPORT_LIMIT - sent)
        if len(batch) < _EXPORT_BATCH or wanted <= 0:
            return
        batch = services.audit.query(
            **filters.query_arguments(), after=batch[-1].index, limit=wanted
        )


def _csv(rows: Iterator[StoredEntry]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(to_csv_row(row))
        if buffer.tell() >= _CSV_FLUSH_CHARS:
            yield _drain(buffer)
    yield _drain(buffer)


def _ocsf(rows: Iterator[StoredEntry]) -> Iterator[str]:
    lines: list[str] = []
    for row in rows:
        record: dict[str, Any] = to_ocsf(row, product_version=__version__)
        lines.append(json.dumps(record, sort_keys=True) + "\n")
        if len(lines) >= _EXPORT_BATCH:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
