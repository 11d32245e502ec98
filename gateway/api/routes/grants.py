"""Grants, their file URLs, and the local store's signed blob URLs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, RedirectResponse

from gateway.api.deps import ContextDep, PrincipalDep, ServicesDep
from gateway.api.schemas import GrantBody
from gateway.errors import NotFound
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
