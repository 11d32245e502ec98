"""The overview's counts, by the database, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from gateway.audit.events import build_event
from gateway.audit.stats import AuditStats, window
from gateway.bootstrap import Services
from gateway.identity.principal import Principal, Role
from gateway.policy.decision import DecisionRequest, decide
from gateway.policy.pack import Eccn, load_pack
from tests.conftest import operator

TODAY = date(2026, 3, 31)
PACK = load_pack("ai-diffusion-2025")


def _decision(location: str, parent_hq: str | None = None) -> dict[str, Any]:
    request = DecisionRequest(
        location=location,
        org_hq=location,
        parent_hq=parent_hq,
        ip_country=None,
        eccn=Eccn.AI_MODEL_WEIGHTS,
        on=TODAY,
    )
    return decide(request, PACK).to_dict()


def _who(country: str) -> Principal:
    return Principal("anna", "rhein", country, frozenset({Role.ML}), None, "weightgate-dev")


def _grant(at: datetime, country: str, tier: int) -> dict[str, Any]:
    decision = {**_decision(country), "effect": "allow", "tier": tier}
    return build_event(
        "grant.allow",
        time=at,
        context=operator(),
        principal=_who(country),
        model="acme/frontier-1",
        revision="r1",
        decision=decision,
        grant_id="00" * 16,
        expires_at=(at + timedelta(hours=1)).isoformat(),
        files=[],
    )


def _deny(at: datetime, country: str, parent_hq: str | None = None) -> dict[str, Any]:
    return build_event(
        "grant.deny",
        time=at,
        context=operator(),
        principal=_who(country),
        model="acme/frontier-1",
        decision=_decision(country, parent_hq),
    )


def _quota(at: datetime) -> dict[str, Any]:
    return build_event(
        "grant.quota",
        time=at,
        context=operator(),
        principal=_who("DE"),
        model="acme/frontier-1",
        quota={"scope": "org", "exceeded": "6 grants in the last hour (limit 5)", "retry_after": 9},
    )


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _fill(services: Services) -> None:
    first = TODAY - timedelta(days=29)
    services.audit.append(
        [
            # Just before the window: not counted.
            _grant(_at(first, 0) - timedelta(microseconds=1), "DE", 1),
            # The window's first instant, and a day's last one: counted on their UTC day.
            _grant(_at(first, 0), "DE", 1),
            _grant(_at(first, 23, 59) + timedelta(seconds=59.999), "IN", 2),
            _deny(_at(first + timedelta(days=1), 0), "IN"),
            _grant(_at(TODAY, 8), "DE", 1),
            _grant(_at(TODAY, 9), "DE", 1),
            _grant(_at(TODAY, 10), "DE", 3),
            _deny(_at(TODAY, 11), "DE", parent_hq="CN"),
            _deny(_at(TODAY, 12), "DE", parent_hq="CN"),
            _quota(_at(TODAY, 13)),
            # After the day: not counted.
            _grant(_at(TODAY + timedelta(days=1), 0), "DE", 1),
        ]
    )
    # Other events in the window are not counted at all.
    services.catalog.add_org("lotus", name="Lotus", hq="JP", parent_hq=None, context=operator())


def _check(services: Services) -> None:
    _fill(services)
    overview = AuditStats(services.sessions).overview(TODAY)
    assert (overview.since, overview.until) == window(TODAY, 30)
    assert len(overview.days) == 30
    assert overview.days[0].day == TODAY - timedelta(days=29)
    assert overview.days[-1].day == TODAY
    assert overview.days[0].grants == {1: 1, 2: 1, 3: 0}
    assert overview.days[1].denials == 1
    assert overview.days[-1].grants == {1: 2, 2: 0, 3: 1}
    assert (overview.days[-1].denials, overview.days[-1].quota_refusals) == (2, 1)
    assert all(day.granted == day.denials == 0 for day in overview.days[2:-1])
    assert (overview.grants, overview.denials, overview.quota_refusals) == (5, 3, 1)
    by_country = {c.country: (c.grants, c.denials, c.quota_refusals) for c in overview.countries}
    assert by_country == {"DE": (4, 2, 1), "IN": (1, 1, 0)}
    assert overview.countries[0].country == "DE"
    reasons = dict(overview.deny_reasons)
    assert reasons["TIER_NOT_ALLOWED"] == 3
    assert reasons["TIER3_BY_PARENT_HQ"] == 2
    assert reasons["TIER2_BY_LOCATION"] == 1
    assert (overview.reasons_from, overview.reasons_sampled) == (3, False)


def test_counts_by_utc_day_tier_and_country_on_sqlite(services: Services) -> None:
    _check(services)


def test_counts_by_utc_day_tier_and_country_on_postgresql(pg_services: Services) -> None:
    _check(pg_services)


def test_an_empty_log_gives_thirty_empty_days(services: Services) -> None:
    overview = AuditStats(services.sessions).overview(TODAY)
    assert [day.granted + day.denials for day in overview.days] == [0] * 30
    assert overview.countries == [] and overview.deny_reasons == []
