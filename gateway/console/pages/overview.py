"""The console's overview: the last 30 UTC days of grant decisions, at a glance.

Counts come from ``gateway.audit.stats`` (the database groups the filter
columns); the chart is inline SVG drawn from ``gateway.console.figures``, so
the page needs no script. Security or admin role, as the audit API.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from gateway.api.deps import ServicesDep
from gateway.audit.stats import AuditStats
from gateway.bootstrap import Services
from gateway.clock import as_utc
from gateway.console.auth import Reviewer
from gateway.console.figures import CheckpointAge, checkpoint_age, day_chart
from gateway.console.rendering import page
from gateway.policy.countries import iso_countries

router = APIRouter()
DAYS = 30


@dataclass(frozen=True)
class CountryRow:
    code: str | None
    name: str
    tier: int | None  # in the pack in force, today
    grants: int
    denials: int
    quota_refusals: int


@router.get("/", response_class=HTMLResponse)
def overview_page(request: Request, _viewer: Reviewer, services: ServicesDep) -> HTMLResponse:
    today = services.clock.now().date()
    overview = AuditStats(services.sessions).overview(today, days=DAYS)
    pack = services.policy.current
    names = iso_countries()
    countries = [
        CountryRow(
            c.country,
            names.get(c.country, "") if c.country else "not recorded",
            pack.tier_of(c.country, today).tier if c.country in names else None,
            c.grants,
            c.denials,
            c.quota_refusals,
        )
        for c in overview.countries
    ]
    return page(
        request,
        "overview.html",
        title="Overview",
        days=DAYS,
        overview=overview,
        chart=day_chart(overview.days),
        countries=countries,
        pack=pack,
        checkpoint=_checkpoint(services),
        interval=services.settings.checkpoint_interval,
    )


def _checkpoint(services: Services) -> CheckpointAge:
    newest = services.audit.checkpoints.newest()
    size, _ = services.audit.tree_state()
    now = services.clock.now()
    return checkpoint_age(
        age=None if newest is None else now - as_utc(newest.signed_at),
        covered=0 if newest is None else newest.size,
        size=size,
        waiting=services.publisher.lag(),
        interval=services.settings.checkpoint_interval,
    )
