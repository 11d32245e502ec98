"""Properties of ``decide()`` over every ISO country and any day.

The attack these stop: a requester who learns that adding or changing one fact
(a parent company, a VPN exit, a different declared country) makes the engine
*more* generous. Restricting an input must never loosen the decision.
"""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.countries import iso_countries
from gateway.policy.decision import Decision, DecisionRequest, decide
from gateway.policy.pack import DEFAULT_PACK, Eccn, PolicyPack, load_pack
from tests.policy.facts import COUNTRY_FIELDS, countries_of, with_country
from tests.policy.reference_tiers import expected_tier

CODES = sorted(iso_countries())
EFFECTIVE_FROM = date(2025, 1, 15)
# What each classification may reach, restated from the rule (not read from the
# pack): 4E091 only Tier 1, EAR99 anything outside the embargoed Tier 3.
ALLOWED_TIERS = {Eccn.AI_MODEL_WEIGHTS: {1}, Eccn.EAR99: {1, 2}}

countries = st.sampled_from(CODES)
optional_countries = st.none() | countries
# Around the pack's start and the Cambodia change, and well past both.
days = st.sampled_from(
    [date(2025, 1, 14), EFFECTIVE_FROM, date(2026, 2, 2), date(2026, 2, 3)]
) | st.dates(min_value=date(2024, 10, 1), max_value=date(2027, 12, 31))

requests = st.builds(
    DecisionRequest,
    location=countries,
    org_hq=optional_countries,
    parent_hq=optional_countries,
    ip_country=optional_countries,
    eccn=st.sampled_from(list(Eccn)),
    on=days,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@pytest.fixture(scope="module")
def pack() -> PolicyPack:
    return load_pack(DEFAULT_PACK)


def _codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


def _at_least_as_restrictive(pack: PolicyPack, day: date, floor: int) -> st.SearchStrategy[str]:
    return st.sampled_from([c for c in CODES if pack.tier_of(c, day).tier >= floor])


def _assert_not_looser(before: Decision, after: Decision) -> None:
    assert after.tier >= before.tier
    assert not (before.effect == "deny" and after.effect == "allow"), (
        f"restricting an input turned a denial into an allow: {before.to_dict()} -> "
        f"{after.to_dict()}"
    )


@PROPERTY_SETTINGS
@given(request=requests)
def test_decision_agrees_with_an_independent_model_of_the_rule(
    pack: PolicyPack, request: DecisionRequest
) -> None:
    present = [c for c in countries_of(request).values() if c is not None]
    tier = max(expected_tier(c, request.on) for c in present)
    allowed = (
        request.on >= EFFECTIVE_FROM
        and request.org_hq is not None
        and tier in ALLOWED_TIERS[request.eccn]
    )
    decision = decide(request, pack)
    assert decision.tier == tier
    assert decision.effect == ("allow" if allowed else "deny")
    codes = _codes(decision)
    assert ("TIER_ALLOWED" in codes) is allowed
    mismatch = request.ip_country is not None and request.ip_country != request.location
    assert ("LOCATION_IP_MISMATCH" in codes) is mismatch
    assert ("ORG_UNREGISTERED" in codes) is (request.org_hq is None)
    assert ("PACK_NOT_IN_EFFECT" in codes) is (request.on < EFFECTIVE_FROM)


@PROPERTY_SETTINGS
@given(request=requests, field=st.sampled_from(["parent_hq", "ip_country"]), data=st.data())
def test_adding_a_restrictive_parent_or_ip_country_never_turns_deny_into_allow(
    pack: PolicyPack, request: DecisionRequest, field: str, data: st.DataObject
) -> None:
    before = decide(request, pack)
    country = data.draw(_at_least_as_restrictive(pack, request.on, before.tier), label=field)
    after = decide(with_country(request, field, country), pack)
    _assert_not_looser(before, after)
    # The new country is at least the effective tier, so it now sets the tier.
    assert after.tier == pack.tier_of(country, request.on).tier


@PROPERTY_SETTINGS
@given(
    request=requests,
    field=st.sampled_from(COUNTRY_FIELDS),
    data=st.data(),
)
def test_replacing_an_input_with_a_more_restrictive_country_never_loosens_the_decision(
    pack: PolicyPack, request: DecisionRequest, field: str, data: st.DataObject
) -> None:
    current = countries_of(request)[field]
    if field == "org_hq" and current is None:
        # Registering an organisation is not a restriction: it lifts ORG_UNREGISTERED.
        field, current = "location", request.location
    floor = 1 if current is None else pack.tier_of(current, request.on).tier
    country = data.draw(_at_least_as_restrictive(pack, request.on, floor), label=field)
    before = decide(request, pack)
    after = decide(with_country(request, field, country), pack)
    _assert_not_looser(before, after)


@PROPERTY_SETTINGS
@given(request=requests)
def test_a_tier1_decision_means_every_input_is_tier1(
    pack: PolicyPack, request: DecisionRequest
) -> None:
    decision = decide(request, pack)
    if decision.tier == 1:
        assert all(ct.tier == 1 for ct in decision.input_tiers.values())
    else:
        assert any(ct.tier == decision.tier for ct in decision.input_tiers.values())
    if decision.allowed and request.eccn is Eccn.AI_MODEL_WEIGHTS:
        assert request.org_hq is not None
        assert pack.tier_of(request.location, request.on).tier == 1
        assert pack.tier_of(request.org_hq, request.on).tier == 1
