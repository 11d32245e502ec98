"""The overview in a real browser: the month's grants and denials, as counted from the log.

The log is built the way the gateway builds it, through the grant service,
over four weeks of a moving clock: Tier 1 requesters every day, a Tier 2
organisation once its license is approved, a German subsidiary of a Chinese
parent denied until its own license, an unregistered organisation denied, and
a batch job that runs into its hourly quota. The expected numbers are tallied
here as the requests are made, not read back through the code under test.
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import expect

from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.errors import PolicyDenied, QuotaExceeded
from gateway.exemptions import Proposal
from gateway.identity.principal import Principal, Role
from gateway.policy.exemptions import ExemptionKind
from gateway.quotas import Limits
from gateway.service import GrantRequest
from tests.conftest import MODEL, operator
from tests.console.conftest import ConsoleBrowser, console_token

DAYS = 26  # of activity, ending today; the 30-day window starts four days before


@dataclass
class Tally:
    grants: Counter[tuple[date, int]] = field(default_factory=Counter)
    denials: Counter[date] = field(default_factory=Counter)
    by_country: Counter[tuple[str, str]] = field(default_factory=Counter)
    quota_refusals: int = 0


def _person(subject: str, org: str, country: str, *roles: Role) -> Principal:
    return Principal(subject, org, country, frozenset(roles or {Role.ML}), None, "weightgate-dev")


def _ask(services: Services, tally: Tally, who: Principal) -> None:
    key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    request = GrantRequest(
        model=MODEL, revision=None, files=None, recipient_key=base64.b64encode(key).decode()
    )
    today = services.clock.now().date()
    try:
        granted = services.grants.request_grant(who, request, operator())
    except PolicyDenied:
        tally.denials[today] += 1
        tally.by_country[(who.country, "deny")] += 1
    except QuotaExceeded:
        tally.quota_refusals += 1
    else:
        tally.grants[(today, granted.body["decision"]["tier"])] += 1
        tally.by_country[(who.country, "allow")] += 1


def _license(services: Services, org: str, country: str) -> None:
    alice = _person("alice", "hq", "DE", Role.ADMIN)
    bob = _person("bob", "hq", "DE", Role.ADMIN)
    proposal = Proposal(
        org=org,
        kind=ExemptionKind.LICENSE.value,
        reference=f"BIS-{country}-2026",
        countries=[country],
        models=[MODEL],
        until=services.clock.now().date() + timedelta(days=365),
        reason="license granted by BIS",
    )
    proposed = services.exemptions.propose(alice, proposal, operator())
    services.exemptions.approve(bob, proposed["id"], operator())


def a_month(services: Services, clock: FixedClock) -> Tally:
    """Four weeks of requests, a few a day; the clock ends on the last day, in the afternoon."""
    for org_id, hq, parent in (("kyoto-ai", "JP", None), ("sao-labs", "BR", None)):
        services.catalog.add_org(org_id, name=org_id, hq=hq, parent_hq=parent, context=operator())
    admin = _person("alice", "hq", "DE", Role.ADMIN)
    services.quotas.set(admin, "subject", "batch-job", Limits(2, None), operator())
    people = {
        "anna": _person("anna", "rhein", "DE"),
        "kenji": _person("kenji", "kyoto-ai", "JP"),
        "priya": _person("priya", "deccan", "IN"),
        "li": _person("li", "panda-de", "DE"),
        "ana": _person("ana", "sao-labs", "BR"),
        "ghost": _person("ghost", "unregistered", "FR"),
        "batch": _person("batch-job", "rhein", "DE"),
    }
    tally = Tally()
    for day in range(DAYS):
        if day == 5:
            _license(services, "deccan", "IN")
        if day == 14:
            _license(services, "panda-de", "CN")
        plan = ["anna"] * (1 + day * 7 % 3) + ["kenji"] * (day % 2)
        plan += ["priya"] * (1 + day % 2 if day % 4 else 0)  # denied before day 5
        plan += ["li"] * (1 if day % 3 == 1 else 0)  # denied before day 14
        plan += ["ana"] * (1 if day % 6 == 2 else 0) + ["ghost"] * (1 if day == 9 else 0)
        plan += ["batch"] * (3 if day == 17 else 0)  # the third is over the hourly quota
        for name in plan:
            _ask(services, tally, people[name])
            clock.advance(timedelta(minutes=7))
        clock.advance(timedelta(days=1, minutes=-7 * len(plan)))
    clock.advance(timedelta(days=-1, hours=5))
    return tally


def test_the_overview_shows_the_month_of_the_log(
    console: ConsoleBrowser, catalog_ready: Services, clock: FixedClock
) -> None:
    tally = a_month(catalog_ready, clock)
    assert catalog_ready.publisher.publish() is not None
    clock.advance(timedelta(hours=1, minutes=30))
    today = clock.now().date()
    assert {day for day, _ in tally.grants} | set(tally.denials) <= {
        today - timedelta(days=n) for n in range(30)
    }

    page = console.sign_in(console_token(catalog_ready, "sam", Role.SECURITY))
    expect(page.locator("h1")).to_have_text("Overview")
    granted, denied = sum(tally.grants.values()), sum(tally.denials.values())
    expect(page.locator("#card-grants .figure")).to_have_text(str(granted))
    expect(page.locator("#card-denials .figure")).to_have_text(str(denied))
    expect(page.locator("#card-quota .figure")).to_have_text("1")
    expect(page.locator("#card-checkpoint .figure")).to_have_text("1 h 30 min")
    assert "warn" not in (page.get_attribute("#card-checkpoint", "class") or "")
    console.screenshot("overview")

    # One rect per tier with grants that day, one per day with denials; each with its tooltip.
    rects = page.locator(".chart svg rect")
    expected_rects = len(tally.grants) + len(tally.denials)
    expect(rects).to_have_count(expected_rects)
    for tier in (1, 2, 3):
        expect(page.locator(f".chart svg rect.tier{tier}")).to_have_count(
            sum(1 for _, t in tally.grants if t == tier)
        )
    titles = set(page.locator(".chart svg rect title").all_text_contents())
    for (day, tier), count in tally.grants.items():
        noun = "grant" if count == 1 else "grants"
        assert f"{day.isoformat()}: {count} {noun} to Tier {tier}" in titles
    for day, count in tally.denials.items():
        assert f"{day.isoformat()}: {count} denial{'' if count == 1 else 's'}" in titles
    assert page.locator(".chart svg text.day").count() >= 30

    # The accessible table says the same as the bars.
    page.click("summary")
    row = page.locator("table.per-day tbody tr").first
    expect(row.locator("td").first).to_have_text(today.isoformat())
    today_grants = sum(count for (day, _), count in tally.grants.items() if day == today)
    expect(row.locator("td").nth(4)).to_have_text(str(today_grants))

    countries = {
        cells[0]: cells[2:]
        for cells in (
            [cell.strip() for cell in line.split("\t")]
            for line in page.locator("#countries tbody tr").all_inner_texts()
        )
    }
    assert countries["DE Germany"][:2] == [
        str(tally.by_country[("DE", "allow")]),
        str(tally.by_country[("DE", "deny")]),
    ]
    assert countries["IN India"][:2] == [
        str(tally.by_country[("IN", "allow")]),
        str(tally.by_country[("IN", "deny")]),
    ]
    reasons = dict(
        line.split("\t") for line in page.locator("#deny-reasons tbody tr").all_inner_texts()
    )
    # Every denial here is for want of a license, except the unregistered one's.
    assert reasons["TIER_NOT_ALLOWED"] == str(denied - 1)
    assert reasons["ORG_UNREGISTERED"] == "1"
    assert "TIER3_BY_PARENT_HQ" in reasons
    console.screenshot("overview-details")
    # The same month in the audit log, newest first: the README shows this page.
    page.goto(console.base_url + "/console/audit")
    rows = page.locator("#audit-entries tbody tr")
    indices = [int(rows.nth(i).get_attribute("data-index") or -1) for i in range(rows.count())]
    assert indices == sorted(indices, reverse=True) and len(indices) == 50
    console.screenshot("audit-month", full_page=False)
