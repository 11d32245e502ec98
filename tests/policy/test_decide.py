"""``decide()`` against the default pack: each test is a way to get weights one should not."""

from __future__ import annotations

import json
from datetime import date

import pytest

from gateway.errors import InvalidInput
from gateway.policy.decision import Decision, DecisionRequest, decide
from gateway.policy.pack import DEFAULT_PACK, Eccn, PolicyPack, load_pack, parse_pack
from tests.policy.facts import with_country

DAY = date(2026, 11, 28)
WEIGHTS = Eccn.AI_MODEL_WEIGHTS

DECISION_KEYS = {
    "effect",
    "tier",
    "policy",
    "policy_version",
    "policy_sha256",
    "eccn",
    "on",
    "inputs",
    "reasons",
    "classification_basis",
    "screening",
    "exemption",
}


@pytest.fixture(scope="module")
def pack() -> PolicyPack:
    return load_pack(DEFAULT_PACK)


def _request(
    location: str = "DE",
    org_hq: str | None = "DE",
    parent_hq: str | None = None,
    ip_country: str | None = None,
    *,
    eccn: Eccn = WEIGHTS,
    on: date = DAY,
) -> DecisionRequest:
    return DecisionRequest(
        location=location,
        org_hq=org_hq,
        parent_hq=parent_hq,
        ip_country=ip_country,
        eccn=eccn,
        on=on,
    )


def _codes(decision: Decision) -> list[str]:
    return [reason.code for reason in decision.reasons]


# Tiers: the most restrictive input wins -------------------------------------------


def test_tier1_requester_in_tier1_org_may_receive_model_weights(pack: PolicyPack) -> None:
    decision = decide(_request("DE", "US"), pack)
    assert decision.effect == "allow"
    assert decision.allowed
    assert decision.tier == 1
    assert _codes(decision) == ["TIER1_BY_LOCATION", "TIER1_BY_ORG_HQ", "TIER_ALLOWED"]


def test_tier3_parent_hidden_behind_tier1_subsidiary_is_denied(pack: PolicyPack) -> None:
    decision = decide(_request("DE", "DE", parent_hq="CN"), pack)
    assert decision.effect == "deny"
    assert decision.tier == 3
    assert "TIER3_BY_PARENT_HQ" in _codes(decision)
    assert "TIER_NOT_ALLOWED" in _codes(decision)


def test_tier3_headquarters_with_staff_in_tier1_is_denied(pack: PolicyPack) -> None:
    decision = decide(_request("US", "CN"), pack)
    assert (decision.effect, decision.tier) == ("deny", 3)
    assert "TIER3_BY_ORG_HQ" in _codes(decision)


def test_tier1_staff_of_a_tier2_organisation_are_not_tier1(pack: PolicyPack) -> None:
    # Tier 1 needs the headquarters in Tier 1 as well as the requester.
    decision = decide(_request("DE", "IN"), pack)
    assert (decision.effect, decision.tier) == ("deny", 2)
    assert _codes(decision) == ["TIER2_BY_ORG_HQ", "TIER_NOT_ALLOWED"]


def test_tier1_organisation_staff_located_in_tier2_are_not_tier1(pack: PolicyPack) -> None:
    decision = decide(_request("IN", "US"), pack)
    assert (decision.effect, decision.tier) == ("deny", 2)
    assert _codes(decision) == ["TIER2_BY_LOCATION", "TIER_NOT_ALLOWED"]


def test_tier3_ip_behind_a_declared_tier1_location_is_denied(pack: PolicyPack) -> None:
    decision = decide(_request("DE", "DE", ip_country="RU"), pack)
    assert (decision.effect, decision.tier) == ("deny", 3)
    codes = _codes(decision)
    assert "TIER3_BY_IP_COUNTRY" in codes
    assert "LOCATION_IP_MISMATCH" in codes


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("location", "TIER3_BY_LOCATION"),
        ("org_hq", "TIER3_BY_ORG_HQ"),
        ("parent_hq", "TIER3_BY_PARENT_HQ"),
        ("ip_country", "TIER3_BY_IP_COUNTRY"),
    ],
)
@pytest.mark.parametrize("tier3", ["CN", "MO", "HK", "IR"])
def test_one_tier3_input_among_tier1_inputs_makes_the_request_tier3(
    pack: PolicyPack, field: str, code: str, tier3: str
) -> None:
    base = _request("US", "US", parent_hq="GB", ip_country="US", eccn=Eccn.EAR99)
    decision = decide(with_country(base, field, tier3), pack)
    assert (decision.effect, decision.tier) == ("deny", 3)
    tier_reasons = [c for c in _codes(decision) if c.startswith("TIER") and "_BY_" in c]
    assert tier_reasons == [code]


@pytest.mark.parametrize("field", ["location", "org_hq", "parent_hq", "ip_country"])
def test_one_tier2_input_among_tier1_inputs_makes_the_request_tier2(
    pack: PolicyPack, field: str
) -> None:
    base = _request("US", "US", parent_hq="GB", ip_country="US")
    decision = decide(with_country(base, field, "SG"), pack)
    assert (decision.effect, decision.tier) == ("deny", 2)
    assert f"TIER2_BY_{field.upper()}" in _codes(decision)


def test_tier_reasons_name_every_input_at_the_effective_tier(pack: PolicyPack) -> None:
    decision = decide(_request("CN", "RU", parent_hq="CN", ip_country="DE"), pack)
    assert decision.tier == 3
    tier_reasons = [c for c in _codes(decision) if "_BY_" in c]
    assert tier_reasons == ["TIER3_BY_LOCATION", "TIER3_BY_ORG_HQ", "TIER3_BY_PARENT_HQ"]


# IP country ---------------------------------------------------------------------------


def test_ip_country_differing_from_location_is_reported(pack: PolicyPack) -> None:
    # Even when both countries are Tier 1, the mismatch is recorded for reviewers.
    decision = decide(_request("DE", "DE", ip_country="FR"), pack)
    assert decision.effect == "allow"
    mismatch = [r for r in decision.reasons if r.code == "LOCATION_IP_MISMATCH"]
    assert len(mismatch) == 1
    assert "DE" in mismatch[0].message
    assert "FR" in mismatch[0].message


@pytest.mark.parametrize("ip_country", [None, "DE"])
def test_matching_or_missing_ip_country_is_not_a_mismatch(
    pack: PolicyPack, ip_country: str | None
) -> None:
    decision = decide(_request("DE", "DE", ip_country=ip_country), pack)
    assert "LOCATION_IP_MISMATCH" not in _codes(decision)


# Unregistered organisations -------------------------------------------------------


@pytest.mark.parametrize("eccn", list(Eccn))
@pytest.mark.parametrize("location", ["US", "DE", "IN", "CN"])
def test_unregistered_organisation_is_always_denied(
    pack: PolicyPack, eccn: Eccn, location: str
) -> None:
    decision = decide(_request(location, None, eccn=eccn), pack)
    assert decision.effect == "deny"
    assert "ORG_UNREGISTERED" in _codes(decision)
    assert "TIER_ALLOWED" not in _codes(decision)
    assert "org_hq" not in decision.input_tiers


def test_unregistered_organisation_with_known_parent_is_still_denied(pack: PolicyPack) -> None:
    decision = decide(_request("US", None, parent_hq="US", eccn=Eccn.EAR99), pack)
    assert decision.effect == "deny"
    assert "ORG_UNREGISTERED" in _codes(decision)


# What each tier may receive -------------------------------------------------------


@pytest.mark.parametrize(
    ("country", "eccn", "effect"),
    [
        ("US", Eccn.AI_MODEL_WEIGHTS, "allow"),
        ("JP", Eccn.AI_MODEL_WEIGHTS, "allow"),
        ("IN", Eccn.AI_MODEL_WEIGHTS, "deny"),
        ("IL", Eccn.AI_MODEL_WEIGHTS, "deny"),
        ("CN", Eccn.AI_MODEL_WEIGHTS, "deny"),
        ("MO", Eccn.AI_MODEL_WEIGHTS, "deny"),
        ("US", Eccn.EAR99, "allow"),
        ("IN", Eccn.EAR99, "allow"),
        ("SG", Eccn.EAR99, "allow"),
        ("CN", Eccn.EAR99, "deny"),
        ("KP", Eccn.EAR99, "deny"),
    ],
)
def test_each_eccn_reaches_only_the_tiers_its_rule_allows(
    pack: PolicyPack, country: str, eccn: Eccn, effect: str
) -> None:
    decision = decide(_request(country, country, eccn=eccn), pack)
    assert decision.effect == effect
    assert decision.eccn is eccn
    final = "TIER_ALLOWED" if effect == "allow" else "TIER_NOT_ALLOWED"
    assert _codes(decision)[-1] == final


def test_pack_without_a_rule_for_the_eccn_denies() -> None:
    # "Absent entries deny": a pack that forgets a classification fails closed.
    only_ear99 = parse_pack(
        b"""
name = "ear99-only"
version = "1"
effective_from = 2025-01-01
default_tier = 1
groups = []

[[rules]]
eccn = "EAR99"
citation = "EAR99"
allow_tiers = [1, 2, 3]
""",
        source="test",
    )
    decision = decide(_request("US", "US", eccn=WEIGHTS), only_ear99)
    assert decision.effect == "deny"
    assert "NO_RULE_FOR_ECCN" in _codes(decision)
    assert "TIER_ALLOWED" not in _codes(decision)


# Reasons --------------------------------------------------------------------------

REASON_CASES = [
    _request("DE", "DE"),
    _request("DE", "DE", parent_hq="CN", ip_country="RU"),
    _request("IN", "US", ip_country="SG", eccn=Eccn.EAR99),
    _request("US", None),
    _request("US", "US", on=date(2024, 12, 31)),
    _request("KH", "KH", on=date(2025, 6, 1), eccn=Eccn.EAR99),
]


@pytest.mark.parametrize("request_", REASON_CASES)
def test_every_reason_carries_code_message_and_citation(
    pack: PolicyPack, request_: DecisionRequest
) -> None:
    decision = decide(request_, pack)
    assert decision.reasons
    for reason in decision.reasons:
        assert reason.code
        assert reason.code == reason.code.upper()
        assert reason.message.strip()
        assert reason.citation.strip()


@pytest.mark.parametrize("request_", REASON_CASES)
def test_a_denial_never_claims_the_tier_was_allowed(
    pack: PolicyPack, request_: DecisionRequest
) -> None:
    decision = decide(request_, pack)
    codes = _codes(decision)
    if decision.effect == "deny":
        assert "TIER_ALLOWED" not in codes
        assert set(codes) & {
            "TIER_NOT_ALLOWED",
            "ORG_UNREGISTERED",
            "PACK_NOT_IN_EFFECT",
            "NO_RULE_FOR_ECCN",
        }
    else:
        assert codes.count("TIER_ALLOWED") == 1


def test_blocked_tier1_request_does_not_claim_tier_allowed(pack: PolicyPack) -> None:
    # Tier 1 would pass the 4E091 rule, but the organisation is unregistered and
    # the day is before the pack: the rule's approval must not appear at all.
    decision = decide(_request("US", None, on=date(2025, 1, 1)), pack)
    assert decision.effect == "deny"
    assert decision.tier == 1
    codes = _codes(decision)
    assert "TIER_ALLOWED" not in codes
    assert {"ORG_UNREGISTERED", "PACK_NOT_IN_EFFECT"} <= set(codes)


def test_tier3_citation_points_at_d5(pack: PolicyPack) -> None:
    decision = decide(_request("DE", "DE", parent_hq="CN"), pack)
    [parent] = [r for r in decision.reasons if r.code == "TIER3_BY_PARENT_HQ"]
    assert "D:5" in parent.citation
    assert "CN" in parent.message


# Inputs the engine must not guess at ---------------------------------------------


@pytest.mark.parametrize("field", ["location", "org_hq", "parent_hq", "ip_country"])
@pytest.mark.parametrize("value", ["XX", "cn", ""])
def test_decide_refuses_an_unvalidated_country_rather_than_defaulting(
    pack: PolicyPack, field: str, value: str
) -> None:
    request_ = with_country(_request("US", "US"), field, value)
    with pytest.raises(InvalidInput):
        decide(request_, pack)


# The decision record -------------------------------------------------------------


def test_decision_dict_has_the_contract_shape(pack: PolicyPack) -> None:
    decision = decide(_request("DE", "DE", parent_hq="CN", ip_country="FR"), pack)
    record = decision.to_dict()
    assert set(record) == DECISION_KEYS
    assert record["effect"] == "deny"
    assert record["tier"] == 3
    assert record["policy"] == "ai-diffusion-2025"
    assert record["policy_version"] == pack.version
    assert record["policy_sha256"] == pack.sha256
    assert record["eccn"] == "4E091"
    assert record["on"] == "2026-11-28"
    assert record["inputs"] == {
        "location": {"country": "DE", "tier": 1, "group": "tier1-aia"},
        "org_hq": {"country": "DE", "tier": 1, "group": "tier1-aia"},
        "parent_hq": {"country": "CN", "tier": 3, "group": "tier3-d5-macau"},
        "ip_country": {"country": "FR", "tier": 1, "group": "tier1-aia"},
    }
    assert record["reasons"]
    for reason in record["reasons"]:
        assert set(reason) == {"code", "message", "citation"}
    # The same dict goes into the audit log and the HTTP body: it must be JSON.
    assert json.loads(json.dumps(record)) == record


def test_decision_dict_lists_only_the_inputs_that_were_given(pack: PolicyPack) -> None:
    record = decide(_request("IN", "IN", eccn=Eccn.EAR99), pack).to_dict()
    assert record["effect"] == "allow"
    assert record["inputs"] == {
        "location": {"country": "IN", "tier": 2, "group": None},
        "org_hq": {"country": "IN", "tier": 2, "group": None},
    }
    assert [r["code"] for r in record["reasons"]] == [
        "TIER2_BY_LOCATION",
        "TIER2_BY_ORG_HQ",
        "TIER_ALLOWED",
    ]


def test_decision_names_the_exact_pack_it_was_made_under(pack: PolicyPack) -> None:
    decision = decide(_request(), pack)
    assert decision.policy == pack.name
    assert decision.policy_version == "2025-01-15.1"
    assert len(decision.policy_sha256) == 64
    assert decision.policy_sha256 == pack.sha256
