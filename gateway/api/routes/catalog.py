"""The catalog, the policy, and the organisation registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from gateway.api.deps import Admin, ContextDep, PrincipalDep, SecurityReader, ServicesDep
from gateway.api.problems import responses
from gateway.api.schemas import (
    Decision,
    ExplainBody,
    ListedFile,
    ModelInfo,
    ModelList,
    OrgBody,
    OrgChange,
    OrgList,
    OrgView,
    PolicySummary,
    ReloadBody,
    RevisionFiles,
)
from gateway.catalog import OrgView as Registered
from gateway.context.policy_source import pack_summary
from gateway.errors import NotFound
from gateway.names import check_model_id, check_revision
from gateway.policy.explain import explain

router = APIRouter()


@router.get("/v1/models", tags=["catalog"], responses=responses(503))
def list_models(_principal: PrincipalDep, services: ServicesDep) -> ModelList:
    """The catalog: every model, its export classification and its published revisions."""
    return ModelList(
        models=[
            ModelInfo(
                id=m.id,
                eccn=m.eccn,
                classification_basis=m.classification_basis,
                training_ops=m.training_ops,
                revisions=list(m.revisions),
            )
            for m in services.catalog.models()
        ]
    )


# A model id is ORG/NAME, so it takes the path converter; the regex in
# gateway.names then admits at most one slash, and the lengths are capped
# before it runs.
@router.get(
    "/v1/models/{model:path}/revisions/{revision}/files",
    tags=["catalog"],
    responses=responses(404, 503),
)
def list_revision_files(
    model: Annotated[str, Path(max_length=129)],
    revision: Annotated[str, Path(max_length=64)],
    _principal: PrincipalDep,
    services: ServicesDep,
) -> RevisionFiles:
    """The files of one revision, with their sizes: what a grant of it would cover.

    A client checks its disk against this before it asks for a grant. It is
    catalog data, so it carries no SHA-256 (see docs/SECURITY.md).
    """
    found = services.catalog.model(check_model_id(model))
    if check_revision(revision) not in found.revisions:
        raise NotFound(f"{found.id} has no revision {revision!r}")
    return RevisionFiles(
        model=found.id,
        revision=revision,
        files=[
            ListedFile(path=f.path, size=f.plaintext_size, ciphertext_size=f.ciphertext_size)
            for f in services.catalog.files(found.id, revision)
        ],
    )


@router.post(
    "/v1/policy/explain", tags=["policy"], response_model=Decision, responses=responses(503)
)
def policy_explain(
    body: ExplainBody, _principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """What the policy in force would decide for these countries, as of ``at`` (default today).

    Nothing is granted and nothing is audited: it is the decision and its reasons only.
    """
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


@router.post(
    "/v1/policy/reload",
    tags=["policy"],
    response_model=PolicySummary,
    responses=responses(403, 503),
)
def policy_reload(
    body: ReloadBody, admin: Admin, services: ServicesDep, context: ContextDep
) -> dict[str, str]:
    """Switch packs, or re-read the configured one (admin); audited. A bad pack changes nothing."""
    pack = services.policy.reload(context, name=body.pack, by=admin)
    return pack_summary(pack)


def _org(view: Registered) -> OrgView:
    return OrgView(
        id=view.id,
        name=view.name,
        hq=view.hq,
        parent_hq=view.parent_hq,
        aliases=list(view.aliases),
    )


@router.get("/v1/orgs", tags=["orgs"], responses=responses(403, 503))
def list_orgs(_reader: SecurityReader, services: ServicesDep) -> OrgList:
    """The organisation registry (security or admin): headquarters, parent and aliases."""
    return OrgList(orgs=[_org(view) for view in services.catalog.orgs()])


@router.post("/v1/orgs", status_code=201, tags=["orgs"], responses=responses(403, 409, 503))
def add_org(body: OrgBody, admin: Admin, services: ServicesDep, context: ContextDep) -> OrgView:
    """Register an organisation (admin); audited with what was added."""
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


@router.patch("/v1/orgs/{org_id}", tags=["orgs"], responses=responses(403, 404, 503))
def update_org(
    org_id: str, body: OrgChange, admin: Admin, services: ServicesDep, context: ContextDep
) -> OrgView:
    """Change an organisation (admin): only the fields given; audited with before and after."""
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
