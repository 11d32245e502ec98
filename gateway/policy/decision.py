"""``decide()``: the export decision as a pure function of its inputs.

No database, clock, network or environment in here: the caller gathers the
facts (who, from where, which org, which model, which day) and this module
only applies the pack to them, so every decision can be replayed and explained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from gateway.policy.exemptions import CITATIONS, ActiveExemption, covering
from gateway.policy.pack import CountryTier, Eccn, PolicyPack
from gateway.policy.screening import ScreeningHit

Effect = Literal["allow", "deny"]

# The inputs whose countries bear on the tier, in the order they are reported.
LOCATION = "location"
ORG_HQ = "org_hq"
PARENT_HQ = "parent_hq"
IP_COUNTRY = "ip_country"

_INPUT_LABELS = {
    LOCATION: "requester location",
    ORG_HQ: "organisation headquarters",
    PARENT_HQ: "ultimate parent headquarters",
    IP_COUNTRY: "client IP country",
}


@dataclass(frozen=True)
class DecisionRequest:
    """The facts a decision is made on. Countries are validated ISO codes."""

    location: str
    org_hq: str | None  # None: the organisation is not registered
    parent_hq: str | None
    ip_country: str | None
    eccn: Eccn
    on: date
    classification_basis: str | None = None
    # Denied-party screening hits for the organisation; any hit denies.
    screening_hits: tuple[ScreeningHit, ...] = ()
    # Approved, unrevoked exemptions of the requester's organisation.
    org_id: str | None = None
    model_id: str | None = None
    exemptions: tuple[ActiveExemption, ...] = ()


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    citation: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "citation": self.citation}


@dataclass(frozen=True)
class Decision:
    effect: Effect
    tier: int
    policy: str
    policy_version: str
    policy_sha256: str
    eccn: Eccn
    on: date
    input_tiers: dict[str, CountryTier] = field(default_factory=dict)
    reasons: tuple[Reason, ...] = ()
    classification_basis: str | None = None
    screening_hits: tuple[ScreeningHit, ...] = ()
    exemption_id: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect == "allow"

    def to_dict(self) -> dict[str, Any]:
        """The one decision shape used by the CLI, the HTTP API and the audit log."""
        return {
            "effect": self.effect,
            "tier": self.tier,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
            "eccn": self.eccn.value,
            "classification_basis": self.classification_basis,
            "on": self.on.isoformat(),
            "inputs": {
                name: {"country": ct.country, "tier": ct.tier, "group": ct.group}
                for name, ct in self.input_tiers.items()
            },
            "reasons": [reason.to_dict() for reason in self.reasons],
            "screening": [hit.to_dict() for hit in self.screening_hits],
            "exemption": self.exemption_id,
        }


def decide(request: DecisionRequest, pack: PolicyPack) -> Decision:
    """Apply ``pack`` to ``request``. The most restrictive applicable tier wins."""
    countries = {
        LOCATION: request.location,
        ORG_HQ: request.org_hq,
        PARENT_HQ: request.parent_hq,
        IP_COUNTRY: request.ip_country,
    }
    input_tiers = {
        name: pack.tier_of(country, request.on)
        for name, country in countries.items()
        if country is not None
    }
    # Tier 1 needs location and headquarters both in Tier 1, which the maximum
    # gives for free: a Tier 3 parent behind a Tier 1 subsidiary still counts.
    tier = max(ct.tier for ct in input_tiers.values())
    reasons = [
        Reason(
            f"TIER{tier}_BY_{name.upper()}",
            f"{_INPUT_LABELS[name]} {ct.country} is Tier {tier}"
            + (f" ({ct.group})" if ct.group else ""),
            ct.citation,
        )
        for name, ct in input_tiers.items()
        if ct.tier == tier
    ]
    blockers = []
    if request.ip_country is not None and request.ip_country != request.location:
        reasons.append(
            Reason(
                "LOCATION_IP_MISMATCH",
                f"declared location {request.location} differs from IP country "
                f"{request.ip_country}; the more restrictive tier applies",
                pack.name,
            )
        )
    if not pack.in_effect(request.on):
        blockers.append(
            Reason(
                "PACK_NOT_IN_EFFECT",
                f"{pack.name} takes effect on {pack.effective_from.isoformat()}",
                pack.name,
            )
        )
    if request.org_hq is None:
        # Without the organisation's headquarters the headquarters test cannot
        # be applied, so an unregistered organisation can never be allowed.
        blockers.append(
            Reason(
                "ORG_UNREGISTERED",
                "the requester's organisation is not registered, so its headquarters is unknown",
                "15 CFR 740.27 (headquarters test)",
            )
        )
    blockers.extend(
        Reason(
            "DENIED_PARTY_MATCH",
            f"organisation name {hit.screened_name!r} matches {hit.listed_name!r} "
            f"(entry {hit.entry_id}, score {hit.score})",
            f"Consolidated Screening List, {hit.source}",
        )
        for hit in request.screening_hits
    )
    rule = pack.rule_for(request.eccn)
    allowance: tuple[Reason, ...] = ()
    exemption_id: str | None = None
    if rule is None:
        blockers.append(
            Reason(
                "NO_RULE_FOR_ECCN",
                f"{pack.name} has no rule for {request.eccn.value}",
                pack.name,
            )
        )
    elif tier in rule.allow_tiers:
        allowance = (
            Reason(
                "TIER_ALLOWED",
                f"{request.eccn.value} may be exported to Tier {tier}",
                rule.citation,
            ),
        )
    else:
        # Every input whose country's tier the rule does not allow must be
        # covered by one exemption, or the request stays denied.
        needed = {
            ct.country: ct.tier for ct in input_tiers.values() if ct.tier not in rule.allow_tiers
        }
        exemption = covering(
            request.exemptions,
            org=request.org_id,
            model=request.model_id,
            needed=needed,
            on=request.on,
        )
        if exemption is not None:
            exemption_id = exemption.id
            allowance = (
                Reason(
                    "EXEMPTION_APPLIES",
                    f"{exemption.kind.value} {exemption.reference} (exemption {exemption.id}) "
                    f"covers {', '.join(sorted(needed))} for {request.eccn.value}",
                    CITATIONS[exemption.kind],
                ),
            )
        else:
            blockers.append(
                Reason(
                    "TIER_NOT_ALLOWED",
                    f"{request.eccn.value} may not be exported to Tier {tier} without a license",
                    rule.citation,
                )
            )
    if not blockers:
        reasons.extend(allowance)
    return Decision(
        effect="deny" if blockers else "allow",
        tier=tier,
        policy=pack.name,
        policy_version=pack.version,
        policy_sha256=pack.sha256,
        eccn=request.eccn,
        on=request.on,
        input_tiers=input_tiers,
        reasons=tuple(reasons + blockers),
        classification_basis=request.classification_basis,
        screening_hits=request.screening_hits,
        exemption_id=exemption_id if not blockers else None,
    )
