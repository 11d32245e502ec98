"""The console's policy page: the pack in force, "explain", and the diff of two packs or days.

Both forms are GET: they change nothing and a result can be bookmarked.
Explain validates its input with the API's ``ExplainBody`` and decides with
the same ``explain`` call as ``POST /v1/policy/explain``. The diff takes pack
names only from the shipped and configured set (``pack_names``): a browser
never names a file. Security or admin role, as the whole console.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import TypeAdapter, ValidationError

from gateway.api.deps import ServicesDep
from gateway.api.schemas import DateParam, ExplainBody
from gateway.bootstrap import Services
from gateway.console.auth import Reviewer
from gateway.console.rendering import page
from gateway.errors import InvalidInput
from gateway.impact import exemption_changes, organisation_cases, recent_grant_cases
from gateway.policy.decision import Decision
from gateway.policy.diff import DecisionChange, TierMove, decision_changes, tier_changes, tier_moves
from gateway.policy.explain import explain
from gateway.policy.pack import Eccn, PolicyPack, load_pack, pack_names

router = APIRouter()

IN_FORCE = ""  # the pack choice that means "the pack in force", not a file
# Recent grant decisions replayed by a diff: the last 30 days, at most this many
# of each effect, so a busy log cannot make the page slow.
REPLAY_DAYS = 30
REPLAY_LIMIT = 1_000
_DAY = TypeAdapter(DateParam)

Short = Annotated[str, Query(max_length=16)]
Choice = Annotated[str, Query(max_length=64)]


@dataclass(frozen=True)
class Diff:
    a: PolicyPack
    b: PolicyPack
    on_a: date
    on_b: date
    moves: list[TierMove]
    countries_moved: int
    decided: list[DecisionChange]
    cases_compared: int
    replay_capped: bool
    exemptions: list[str]


@router.get("/policy", response_class=HTMLResponse)
def policy_page(
    request: Request,
    _viewer: Reviewer,
    services: ServicesDep,
    *,
    form: Short = "",
    country: Short = "",
    org_hq: Short = "",
    parent_hq: Short = "",
    ip_country: Short = "",
    eccn: Short = Eccn.AI_MODEL_WEIGHTS.value,
    at: Short = "",
    pack_a: Choice = IN_FORCE,
    pack_b: Choice = IN_FORCE,
    on_a: Short = "",
    on_b: Short = "",
) -> HTMLResponse:
    pack = services.policy.current
    today = services.clock.now().date()
    asked = {
        "country": country,
        "org_hq": org_hq,
        "parent_hq": parent_hq,
        "ip_country": ip_country,
        "eccn": eccn,
        "at": at,
    }
    chosen = {"pack_a": pack_a, "pack_b": pack_b, "on_a": on_a, "on_b": on_b}
    decision: Decision | None = None
    diff: Diff | None = None
    explain_error = diff_error = ""
    try:
        if form == "explain":
            decision = _explain(pack, asked, today)
        elif form == "diff":
            diff = _diff(services, pack, chosen, today)
    except InvalidInput as refusal:
        if form == "explain":
            explain_error = refusal.message
        else:
            diff_error = refusal.message
    return page(
        request,
        "policy.html",
        status=422 if explain_error or diff_error else 200,
        title="Policy",
        pack=pack,
        switched_at=services.policy.switched_at(pack),
        today=today,
        asked=asked,
        eccns=[e.value for e in Eccn],
        decision=decision,
        explain_error=explain_error,
        names=pack_names(services.settings.policy_dir),
        chosen=chosen,
        diff=diff,
        diff_error=diff_error,
        replay_days=REPLAY_DAYS,
    )


def _explain(pack: PolicyPack, asked: dict[str, str], today: date) -> Decision:
    """As ``POST /v1/policy/explain``: ``ExplainBody``'s checks, then ``explain``."""
    try:
        body = ExplainBody.model_validate({k: v.strip() for k, v in asked.items() if v.strip()})
    except ValidationError as exc:
        raise InvalidInput(_problems(exc)) from None
    return explain(
        pack,
        country=body.country,
        org_hq=body.org_hq,
        parent_hq=body.parent_hq,
        ip_country=body.ip_country,
        eccn=body.eccn,
        on=body.at or today,
    )


def _diff(services: Services, in_force: PolicyPack, chosen: dict[str, str], today: date) -> Diff:
    """As ``weightgate policy diff``: countries, organisations, recent grants, exemptions."""
    names = pack_names(services.settings.policy_dir)
    a = _pack(services, in_force, chosen["pack_a"], names)
    b = _pack(services, in_force, chosen["pack_b"], names)
    on_a = _day(chosen["on_a"], "date A") or today
    on_b = _day(chosen["on_b"], "date B") or on_a
    changes = tier_changes(a, b, on_a=on_a, on_b=on_b)
    now = services.clock.now()
    replayed = recent_grant_cases(
        services.audit, now - timedelta(days=REPLAY_DAYS), limit=REPLAY_LIMIT
    )
    cases = organisation_cases(services.catalog, now) + replayed
    return Diff(
        a=a,
        b=b,
        on_a=on_a,
        on_b=on_b,
        moves=tier_moves(changes),
        countries_moved=len(changes),
        decided=decision_changes(cases, a, b, on_a=on_a, on_b=on_b),
        cases_compared=len(cases),
        replay_capped=len(replayed) >= REPLAY_LIMIT,
        exemptions=exemption_changes(services.exemptions.list(), a, b, on_a=on_a, on_b=on_b),
    )


def _pack(services: Services, in_force: PolicyPack, name: str, names: list[str]) -> PolicyPack:
    # Checked against the list first: load_pack would also take a path.
    if name == IN_FORCE:
        return in_force
    if name not in names:
        raise InvalidInput(f"{name!r} is not one of the packs this gateway has: {names}")
    return load_pack(name, search_dir=services.settings.policy_dir)


def _day(value: str, what: str) -> date | None:
    if not value.strip():
        return None
    try:
        return _DAY.validate_python(value.strip())
    except ValidationError:
        raise InvalidInput(f"{what} must be an ISO 8601 date, YYYY-MM-DD") from None


def _problems(exc: ValidationError) -> str:
    def field(error: Any) -> str:
        return ".".join(str(part) for part in error.get("loc", ())) or "input"

    return "; ".join(f"{field(e)}: {e.get('msg', '')}" for e in exc.errors())
