"""What changes between two packs, or two days of one pack; pure, packs and cases in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from gateway.policy.countries import iso_countries
from gateway.policy.decision import Decision, DecisionRequest, decide
from gateway.policy.pack import PolicyPack


@dataclass(frozen=True)
class TierChange:
    country: str
    name: str
    before: int
    after: int


@dataclass(frozen=True)
class DecisionChange:
    label: str
    before: Decision
    after: Decision


# A move shared by more countries than this is shown as one row of codes, not a
# row each: a pack that drops a tier moves a hundred and more at once.
NAMED_MOVES = 10


@dataclass(frozen=True)
class TierMove:
    """Every country moving from one tier to another, in country-code order."""

    before: int
    after: int
    changes: tuple[TierChange, ...]

    @property
    def named(self) -> bool:
        """Few enough countries to show one row each (else one row of codes)."""
        return len(self.changes) <= NAMED_MOVES


def tier_moves(changes: Iterable[TierChange]) -> list[TierMove]:
    """``changes`` grouped by (before, after), the moves in tier order."""
    moves: dict[tuple[int, int], list[TierChange]] = {}
    for change in changes:
        moves.setdefault((change.before, change.after), []).append(change)
    return [
        TierMove(before, after, tuple(moved)) for (before, after), moved in sorted(moves.items())
    ]


def tier_changes(a: PolicyPack, b: PolicyPack, *, on_a: date, on_b: date) -> list[TierChange]:
    changes = []
    for code, name in sorted(iso_countries().items()):
        before, after = a.tier_of(code, on_a).tier, b.tier_of(code, on_b).tier
        if before != after:
            changes.append(TierChange(code, name, before, after))
    return changes


def decision_changes(
    cases: Iterable[tuple[str, DecisionRequest]],
    a: PolicyPack,
    b: PolicyPack,
    *,
    on_a: date,
    on_b: date,
) -> list[DecisionChange]:
    """The cases whose effect or tier differs between ``a`` on ``on_a`` and ``b`` on ``on_b``."""
    changes = []
    for label, request in cases:
        before = decide(replace(request, on=on_a), a)
        after = decide(replace(request, on=on_b), b)
        if (before.effect, before.tier) != (after.effect, after.tier):
            changes.append(DecisionChange(label, before, after))
    return changes
