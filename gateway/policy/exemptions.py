"""Exemptions: the doors an export license or a validated end-user authorisation opens.

Pure: approved exemptions come in as data, and ``covering`` says whether one
of them lifts a denial. Only a ``license`` can cover a Tier 3 country;
validated end users (UVEU, NVEU) cover Tier 2 destinations only. Whether an
exemption was approved by a second admin is the exemption service's business:
only approved, unexpired, unrevoked ones ever reach the policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class ExemptionKind(StrEnum):
    LICENSE = "license"
    UVEU = "uveu"  # universal validated end user
    NVEU = "nveu"  # national validated end user


CITATIONS = {
    ExemptionKind.LICENSE: "BIS export license, 15 CFR Part 750",
    ExemptionKind.UVEU: "Universal Validated End User, 15 CFR 748.15 (90 FR 4544)",
    ExemptionKind.NVEU: "National Validated End User, 15 CFR 748.15 (90 FR 4544)",
}


@dataclass(frozen=True)
class ActiveExemption:
    id: str
    kind: ExemptionKind
    reference: str
    org: str
    countries: frozenset[str]
    models: frozenset[str] | None  # None: every model
    valid_from: date
    valid_until: date  # inclusive

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day <= self.valid_until


def may_cover(kind: ExemptionKind, tier: int) -> bool:
    """A Tier 3 destination needs a license; nothing else reaches it."""
    return tier < 3 or kind is ExemptionKind.LICENSE


def covering(
    exemptions: Iterable[ActiveExemption],
    *,
    org: str | None,
    model: str | None,
    needed: dict[str, int],
    on: date,
) -> ActiveExemption | None:
    """The first exemption that covers every country in ``needed`` (country -> tier)."""
    if org is None or not needed:
        return None
    for exemption in exemptions:
        if exemption.org != org or not exemption.in_force(on):
            continue
        if exemption.models is not None and model not in exemption.models:
            continue
        if all(
            c in exemption.countries and may_cover(exemption.kind, t) for c, t in needed.items()
        ):
            return exemption
    return None
