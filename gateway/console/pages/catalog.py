"""The console's models and organisations page: the catalog, screening status, recent grants.

Reviewers look; only an admin revokes a grant that is not their own, as in
the API, and through the same service method, so the revocation is audited
exactly as ``DELETE /v1/grants/{id}`` audits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from gateway.api.deps import ContextDep, ServicesDep
from gateway.bootstrap import Services
from gateway.catalog import ModelView, OrgView
from gateway.console.auth import AdminForm, ConsoleAdmin, Reviewer
from gateway.console.rendering import page
from gateway.identity.principal import Role
from gateway.policy.screening import ScreeningHit
from gateway.screening import ScreeningService, StoredScreening

router = APIRouter()

DONE = {"revoked": "Grant revoked. Its file URLs answer 410 from the next request on."}
Done = Literal["revoked"]
# Grant ids are hex now; older ones are URL-safe base64. Nothing longer is looked up.
GrantId = Annotated[str, Path(min_length=1, max_length=64, pattern="^[A-Za-z0-9_-]+$")]
# Characters of a list's SHA-256 shown: enough to tell two lists apart at a glance.
SHA_PREFIX = 12


@dataclass(frozen=True)
class Revision:
    name: str
    files: int
    size: str


@dataclass(frozen=True)
class ModelRow:
    model: ModelView
    revisions: list[Revision]


@dataclass(frozen=True)
class Screening:
    """An organisation's stored result as the page shows it."""

    state: Literal["clear", "hits", "not screened", "no list"]
    hits: tuple[ScreeningHit, ...] = ()
    list_prefix: str = ""
    current: bool = True


@dataclass(frozen=True)
class OrgRow:
    org: OrgView
    screening: Screening


@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    viewer: Reviewer,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    done: Annotated[Done | None, Query()] = None,
) -> HTMLResponse:
    orgs = services.catalog.orgs()
    in_force = services.screening.current
    return page(
        request,
        "catalog.html",
        title="Models and organisations",
        models=[_model_row(services, model) for model in services.catalog.models()],
        orgs=_org_rows(services, orgs),
        screening_list=None
        if in_force is None
        else {
            "sha256": in_force.sha256,
            "parties": len(in_force.parties),
            "threshold": in_force.threshold,
        },
        grants=services.grants.recent(limit),
        limit=limit,
        may_revoke=viewer.principal.has_any(Role.ADMIN),
        notice=DONE[done] if done else None,
    )


@router.post("/catalog/grants/{grant_id}/revoke")
def revoke_grant(
    grant_id: GrantId,
    viewer: ConsoleAdmin,
    _form: AdminForm,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    services.grants.revoke(viewer.principal, grant_id, context)
    return RedirectResponse("/console/catalog?done=revoked", status_code=303)


def _model_row(services: Services, model: ModelView) -> ModelRow:
    revisions = []
    for name in model.revisions:
        # The catalog remembers a revision's files for a minute: cheap to ask again.
        files = services.catalog.files(model.id, name)
        total = sum(f.plaintext_size for f in files)
        revisions.append(Revision(name, len(files), byte_size(total)))
    return ModelRow(model, revisions)


def _org_rows(services: Services, orgs: list[OrgView]) -> list[OrgRow]:
    screening = services.screening
    if screening.current is None:
        return [OrgRow(org, Screening("no list")) for org in orgs]
    stored = screening.stored_results([org.id for org in orgs])
    return [OrgRow(org, _screening(screening, stored.get(org.id))) for org in orgs]


def _screening(screening: ScreeningService, stored: StoredScreening | None) -> Screening:
    if stored is None:
        return Screening("not screened")
    return Screening(
        "hits" if stored.hits else "clear",
        tuple(sorted(stored.hits, key=lambda hit: -hit.score)),
        stored.list_sha256[:SHA_PREFIX],
        screening.is_current(stored),
    )


def byte_size(count: int) -> str:
    """A size in bytes as people read it (binary units, one decimal)."""
    if count < 1024:
        return f"{count} B"
    size = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
