"""Which tier each country is in, on which day, and which strings count as a country at all.

The expected tiers come from ``tests/policy/reference_tiers.py``, a copy of the
reference CSV kept apart from the pack, so the pack is checked against an
independent list rather than against itself.
"""

from __future__ import annotations

from datetime import date

import pytest

from gateway.errors import InvalidInput
from gateway.policy.countries import country_code, iso_countries
from gateway.policy.explain import explain
from gateway.policy.pack import DEFAULT_PACK, PolicyPack, load_pack
from tests.policy.reference_tiers import (
    ISO_CODE_COUNT,
    TIER1,
    TIER3_JAN_2025,
    expected_tier,
)

ALL_CODES = sorted(iso_countries())

# The day the rule took effect, the last day Cambodia was in D:5, the first day
# it was not, and a day well after every dated change the pack knows about.
CHECK_DAYS = (
    date(2025, 1, 15),
    date(2026, 2, 2),
    date(2026, 2, 3),
    date(2026, 11, 28),
)

MALFORMED_CODES = ("XX", "ZZ", "", "usa", "D E", "USA", "D", "DEU", "1A", "U.S.")


@pytest.fixture(scope="module")
def pack() -> PolicyPack:
    return load_pack(DEFAULT_PACK)


def test_packaged_iso_list_has_every_reference_code() -> None:
    # A code missing from the ISO list would make a real country an error, and
    # an extra one would let a made-up code through to the default tier.
    assert len(ALL_CODES) == ISO_CODE_COUNT
    assert set(ALL_CODES) >= TIER1
    assert set(ALL_CODES) >= TIER3_JAN_2025
    assert not TIER1 & TIER3_JAN_2025


@pytest.mark.parametrize("day", CHECK_DAYS, ids=str)
@pytest.mark.parametrize("code", ALL_CODES)
def test_every_iso_code_has_the_reference_tier(pack: PolicyPack, code: str, day: date) -> None:
    assert pack.tier_of(code, day).tier == expected_tier(code, day)


@pytest.mark.parametrize("day", CHECK_DAYS, ids=str)
def test_no_country_silently_falls_into_tier2_when_it_belongs_elsewhere(
    pack: PolicyPack, day: date
) -> None:
    # The same comparison as the table above, as whole sets, so a failure names
    # every misplaced country at once.
    by_tier: dict[int, set[str]] = {1: set(), 2: set(), 3: set()}
    for code in ALL_CODES:
        by_tier[pack.tier_of(code, day).tier].add(code)
    assert by_tier[1] == set(TIER1)
    assert by_tier[3] == {c for c in ALL_CODES if expected_tier(c, day) == 3}
    assert by_tier[2] == set(ALL_CODES) - by_tier[1] - by_tier[3]


@pytest.mark.parametrize("code", ["HK", "MO"])
@pytest.mark.parametrize("day", CHECK_DAYS, ids=str)
def test_hong_kong_and_macau_are_not_a_tier2_side_door_into_china(
    pack: PolicyPack, code: str, day: date
) -> None:
    tier = pack.tier_of(code, day)
    assert tier.tier == 3
    assert tier.group is not None
    assert tier.citation


def test_cambodia_is_tier3_until_the_day_it_left_d5(pack: PolicyPack) -> None:
    assert pack.tier_of("KH", date(2026, 2, 2)).tier == 3
    # ``until`` is exclusive: on 3 February 2026 Cambodia is already Tier 2.
    on_the_day = pack.tier_of("KH", date(2026, 2, 3))
    assert on_the_day.tier == 2
    assert on_the_day.group is None


def test_cambodia_change_replays_correctly_in_a_decision(pack: PolicyPack) -> None:
    # A decision replayed as of the old day must use the old tier, or an audit
    # replay would disagree with what was decided at the time.
    before = explain(pack, country="KH", org_hq="KH", eccn="EAR99", on=date(2026, 2, 2))
    after = explain(pack, country="KH", org_hq="KH", eccn="EAR99", on=date(2026, 2, 3))
    assert (before.effect, before.tier) == ("deny", 3)
    assert (after.effect, after.tier) == ("allow", 2)


def test_tier_carries_the_group_and_citation_that_put_it_there(pack: PolicyPack) -> None:
    china = pack.tier_of("CN", date(2026, 11, 28))
    assert china.group == "tier3-d5-macau"
    assert "D:5" in china.citation
    germany = pack.tier_of("DE", date(2026, 11, 28))
    assert germany.group == "tier1-aia"
    assert "740" in germany.citation
    india = pack.tier_of("IN", date(2026, 11, 28))
    assert india.group is None
    assert "Tier 2" in india.citation


def test_request_dated_before_the_pack_took_effect_is_denied(pack: PolicyPack) -> None:
    # Even the most favourable request is denied on a day the pack does not cover.
    decision = explain(pack, country="US", org_hq="US", eccn="EAR99", on=date(2025, 1, 14))
    assert decision.effect == "deny"
    codes = [reason.code for reason in decision.reasons]
    assert "PACK_NOT_IN_EFFECT" in codes
    assert "TIER_ALLOWED" not in codes


def test_request_on_the_effective_day_is_decided_by_the_pack(pack: PolicyPack) -> None:
    decision = explain(pack, country="US", org_hq="US", eccn="EAR99", on=date(2025, 1, 15))
    assert decision.effect == "allow"
    assert "PACK_NOT_IN_EFFECT" not in [reason.code for reason in decision.reasons]


# Country codes ------------------------------------------------------------------


@pytest.mark.parametrize("value", MALFORMED_CODES)
def test_unknown_or_malformed_country_code_is_an_error_not_tier2(value: str) -> None:
    with pytest.raises(InvalidInput, match="ISO 3166-1"):
        country_code(value)


@pytest.mark.parametrize("value", MALFORMED_CODES)
def test_pack_refuses_to_tier_an_unknown_code(pack: PolicyPack, value: str) -> None:
    with pytest.raises(InvalidInput, match="ISO 3166-1"):
        pack.tier_of(value, date(2026, 11, 28))


def test_country_code_error_names_the_field_and_value() -> None:
    with pytest.raises(InvalidInput) as caught:
        country_code("XX", what="parent headquarters")
    assert "parent headquarters" in caught.value.message
    assert "'XX'" in caught.value.message


@pytest.mark.parametrize(("value", "code"), [("de", "DE"), ("De", "DE"), (" cn ", "CN")])
def test_lower_case_valid_code_is_normalised(value: str, code: str) -> None:
    assert country_code(value) == code


@pytest.mark.parametrize("value", ["\u0131t", "\u017fe", "\u0131e", "\ufb01", "\u00df"])
def test_unicode_look_alike_is_not_case_folded_into_a_country(value: str) -> None:
    # str.upper() maps some non-ASCII letters onto ASCII ones: dotless i + "t"
    # (U+0131) becomes "IT" (Italy), long s + "e" (U+017F) becomes "SE" (Sweden), the
    # ligature U+FB01 becomes "FI" (Finland). None of these is an ISO 3166-1 code,
    # and a token claim or API body carrying one must be refused, not read as a
    # Tier 1 country.
    with pytest.raises(InvalidInput):
        country_code(value)


@pytest.mark.parametrize("field", ["country", "org_hq", "parent_hq", "ip_country"])
@pytest.mark.parametrize("value", [v for v in MALFORMED_CODES if v])
def test_explain_refuses_a_malformed_code_in_any_field(
    pack: PolicyPack, field: str, value: str
) -> None:
    facts = {"country": "DE", "org_hq": "DE", "parent_hq": None, "ip_country": None}
    facts[field] = value
    with pytest.raises(InvalidInput, match="ISO 3166-1"):
        explain(
            pack,
            country=str(facts["country"]),
            org_hq=facts["org_hq"],
            parent_hq=facts["parent_hq"],
            ip_country=facts["ip_country"],
            on=date(2026, 11, 28),
        )


def test_explain_refuses_an_empty_location(pack: PolicyPack) -> None:
    with pytest.raises(InvalidInput, match="ISO 3166-1"):
        explain(pack, country="", org_hq="DE", on=date(2026, 11, 28))


@pytest.mark.parametrize("field", ["org_hq", "parent_hq", "ip_country"])
def test_explain_refuses_an_empty_code_rather_than_treating_it_as_absent(
    pack: PolicyPack, field: str
) -> None:
    # An explicit "" is a malformed code, not "no value": read as absent, an empty
    # parent headquarters drops the headquarters test and a Chinese-owned German
    # subsidiary is explained as allowed.
    facts: dict[str, str | None] = {"org_hq": "DE", "parent_hq": "CN", "ip_country": None}
    facts[field] = ""
    with pytest.raises(InvalidInput):
        explain(
            pack,
            country="DE",
            org_hq=facts["org_hq"],
            parent_hq=facts["parent_hq"],
            ip_country=facts["ip_country"],
            on=date(2026, 11, 28),
        )


def test_explain_refuses_an_unknown_eccn(pack: PolicyPack) -> None:
    with pytest.raises(InvalidInput, match="eccn"):
        explain(pack, country="DE", org_hq="DE", eccn="5D002", on=date(2026, 11, 28))
