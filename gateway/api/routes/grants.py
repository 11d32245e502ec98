"""Grants, their file URLs, and the local store's signed blob URLs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, RedirectResponse

from gateway import metrics
from gateway.api.deps import ContextDep, PrincipalDep, ServicesDep
from gateway.api.problems import responses
from gateway.api.schemas import INT64_MAX, GrantBody, GrantStatus, GrantView
from gateway.errors import NotFound
from gateway.service import GrantRequest
from gateway.storage.local import BLOB_ROUTE, LocalBlobStore

router = APIRouter(tags=["grants"])

# Capabilities and storage signatures are hex HMACs. Anything else is
# malformed (422) before it reaches a constant-time comparison, which only
# takes ASCII strings.
HEX = r"^[0-9a-f]*$"


@router.post(
    "/v1/grants",
    status_code=201,
    response_model=GrantView,
    response_description="The grant: its decision, and each file's URL and sealed key.",
    responses=responses(403, 404, 429, 503),
)
async def create_grant(
    body: GrantBody, principal: PrincipalDep, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Ask for a model's weights: decided under the export policy, audited, then granted.

    Each file's key is sealed to ``recipient_key`` (X25519, or the
    ML-KEM-768 + X25519 hybrid), so only the requester can decrypt: with
    ``envelopes: ["v2"]``, through one sealed grant key for the whole grant. A denial
    is a 403 problem with the ``reasons``, and is audited like a grant.
    Nothing is granted unless its audit entry is durable first.
    """
    # Async so that no request thread is held while the audit batch commits:
    # the service runs its blocking part in a worker thread and awaits the commit.
    request = GrantRequest(
        body.model,
        body.revision,
        body.files,
        body.recipient_key,
        body.recipient_kem,
        include=tuple(body.include),
        exclude=tuple(body.exclude),
        envelopes=tuple(body.envelopes or ()),
    )
    with metrics.timed(metrics.GRANT_SECONDS):
        return (await services.grants.request_grant_awaiting(principal, request, context)).body


@router.get(
    "/v1/grants/{grant_id}",
    response_model=GrantStatus,
    responses=responses(404, 503),
)
def get_grant(grant_id: str, principal: PrincipalDep, services: ServicesDep) -> dict[str, Any]:
    """A grant and its state, to its owner or an admin (anyone else: 404)."""
    return services.grants.grant_status(principal, grant_id)


@router.delete(
    "/v1/grants/{grant_id}",
    response_model=GrantStatus,
    responses=responses(404, 503),
)
def revoke_grant(
    grant_id: str, principal: PrincipalDep, services: ServicesDep, context: ContextDep
) -> dict[str, Any]:
    """Revoke a grant (its owner or an admin); its file URLs answer 410 from then on. Audited."""
    return services.grants.revoke(principal, grant_id, context)


@router.get(
    "/v1/grants/{grant_id}/files/{path:path}",
    status_code=307,
    response_class=RedirectResponse,
    responses={
        307: {
            "description": "To the file's ciphertext in storage, by a URL valid for at most 60 s.",
            "headers": {"Location": {"schema": {"type": "string", "format": "uri"}}},
        },
        **responses(403, 404, 410, 503),
    },
)
def grant_file(
    grant_id: str,
    path: str,
    services: ServicesDep,
    context: ContextDep,
    cap: Annotated[str, Query(max_length=128, pattern=HEX)] = "",
) -> RedirectResponse:
    """A granted file's URL: re-checks the grant, audits, and redirects to storage.

    The URL is a capability (``cap``): it needs no token, and works only while
    the grant is active and any exemption it rests on is still in force.
    """
    with metrics.timed(metrics.REDIRECT_SECONDS):
        url = services.grants.storage_redirect(grant_id, path, cap, context)
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


@router.get(
    BLOB_ROUTE + "{key:path}",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The stored ciphertext.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **responses(403, 404, 410),
    },
)
def blob(
    key: str,
    services: ServicesDep,
    v: Annotated[str, Query(max_length=128)],
    exp: Annotated[int, Query(ge=0, le=INT64_MAX)],
    sig: Annotated[str, Query(max_length=128, pattern=HEX)],
) -> FileResponse:
    """A signed URL of the local blob store (``file://`` storage only; S3 serves its own)."""
    if not isinstance(services.blobs, LocalBlobStore):
        raise NotFound("this gateway does not serve blobs itself")
    path = services.blobs.open_signed(key, v, exp, sig)
    return FileResponse(path, media_type="application/octet-stream")
