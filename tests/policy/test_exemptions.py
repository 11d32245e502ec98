"""Exemptions in the pure decision: what a license or a validated end user can and cannot open."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.impact import exemption_changes
from gateway.policy.decision import DecisionRequest, decide
from gateway.policy.exemptions import ActiveExemption, ExemptionKind
from gateway.policy.pack import Eccn, load_pack

PACK = load_pack("ai-diffusion-2025")
DAY = date(2026, 3, 2)


def _exemption(
    kind: ExemptionKind,
    countries: set[str],
    *,
    org: str = "acme",
    models: frozenset[str] | None = None,
    until: date = date(2026, 12, 31),
) -> ActiveExemption:
    return ActiveExemption(
        "ex-1", kind, "D-12345", org, frozenset(countries), models, date(2026, 1, 1), until
    )


def _decide(
    location: str,
    hq: str,
    *exemptions: ActiveExemption,
    parent: str | None = None,
    model: str = "acme/m",
    on: date = DAY,
) -> tuple[str, set[str]]:
    decision = decide(
        DecisionRequest(
            location=location,
            org_hq=hq,
            parent_hq=parent,
            ip_country=None,
            eccn=Eccn.AI_MODEL_WEIGHTS,
            on=on,
            org_id="acme",
            model_id=model,
            exemptions=exemptions,
        ),
        PACK,
    )
    return decision.effect, {r.code for r in decision.reasons}


@pytest.mark.parametrize("kind", list(ExemptionKind))
def test_any_exemption_naming_a_tier2_country_opens_it(kind: ExemptionKind) -> None:
    effect, codes = _decide("IN", "IN", _exemption(kind, {"IN"}))
    assert effect == "allow" and "EXEMPTION_APPLIES" in codes


@pytest.mark.parametrize("kind", [ExemptionKind.UVEU, ExemptionKind.NVEU])
def test_validated_end_user_stretched_to_a_tier3_country_opens_nothing(kind: ExemptionKind) -> None:
    effect, codes = _decide("CN", "CN", _exemption(kind, {"CN"}))
    assert effect == "deny" and "TIER_NOT_ALLOWED" in codes


def test_license_naming_the_tier3_country_opens_it() -> None:
    assert _decide("CN", "CN", _exemption(ExemptionKind.LICENSE, {"CN"}))[0] == "allow"


def test_exemption_must_cover_every_restrictive_input() -> None:
    # Located in India, parent in China: a license for India alone is not enough.
    license_in = _exemption(ExemptionKind.LICENSE, {"IN"})
    assert _decide("IN", "IN", license_in, parent="CN")[0] == "deny"
    both = _exemption(ExemptionKind.LICENSE, {"IN", "CN"})
    assert _decide("IN", "IN", both, parent="CN")[0] == "allow"


@pytest.mark.parametrize(
    ("exemption", "model", "on"),
    [
        (_exemption(ExemptionKind.LICENSE, {"IN"}, org="someone-else"), "acme/m", DAY),
        (
            _exemption(ExemptionKind.LICENSE, {"IN"}, models=frozenset({"acme/other"})),
            "acme/m",
            DAY,
        ),
        (_exemption(ExemptionKind.LICENSE, {"IN"}, until=date(2026, 3, 1)), "acme/m", DAY),
        (_exemption(ExemptionKind.LICENSE, {"IN"}), "acme/m", date(2025, 12, 31)),
    ],
    ids=["another-org", "another-model", "expired", "not-yet-valid"],
)
def test_exemption_outside_its_terms_opens_nothing(
    exemption: ActiveExemption, model: str, on: date
) -> None:
    assert _decide("IN", "IN", exemption, model=model, on=on)[0] == "deny"


def test_policy_diff_names_a_validated_end_user_a_rule_change_would_strand() -> None:
    approved = {
        "id": "ex-9",
        "status": "approved",
        "kind": "uveu",
        "reference": "UVEU-3",
        "org": "angkor",
        "countries": ["KH", "TH"],
    }
    pending = {**approved, "id": "ex-10", "status": "pending"}
    # Cambodia left D:5 on 2026-02-03: going back across that day moves it to Tier 3.
    lines = exemption_changes(
        [approved, pending], PACK, PACK, on_a=date(2026, 2, 15), on_b=date(2026, 1, 15)
    )
    assert lines == ["ex-9 (uveu UVEU-3, angkor) would stop covering KH"]
