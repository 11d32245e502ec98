"""The name index finds every party the full WRatio scan finds, at the full list's size.

The reference here is written again from rapidfuzz, independently of the
index: every listed name scored against the screened one. A listed party the
index missed would be a denied party granted; a party it found that the scan
did not would be a score the scan disagrees with.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from benchmarks.screening import disguise, screened_names, synthetic_parties
from gateway.policy.screening import ListedParty, ScreeningList, normalise


class FullScan:
    """Every party any of whose names scores at least ``threshold``, best score per party."""

    def __init__(self, parties: list[ListedParty]) -> None:
        listed = [(p.id, normalise(n)) for p in parties for n in (p.name, *p.alt_names)]
        self._entries = [entry for entry, n in listed if n]
        self._names = [n for _, n in listed if n]

    def __call__(self, name: str, threshold: int) -> list[tuple[str, int]]:
        query = normalise(name)
        best: dict[str, int] = {}
        if query:
            for _, score, position in process.extract(
                query, self._names, scorer=fuzz.WRatio, score_cutoff=threshold, limit=None
            ):
                entry = self._entries[position]
                best[entry] = max(best.get(entry, 0), round(score))
        return sorted(best.items())


def indexed(screening: ScreeningList, name: str) -> list[tuple[str, int]]:
    return sorted((hit.entry_id, hit.score) for hit in screening.screen([name]))


@pytest.fixture(scope="module")
def full_size() -> tuple[FullScan, ScreeningList]:
    parties = synthetic_parties()
    assert sum(1 + len(p.alt_names) for p in parties) >= 29_000
    return FullScan(parties), ScreeningList(parties, sha256="0" * 64, threshold=90)


def test_disguised_listed_names_at_full_size_are_all_found_as_the_full_scan_finds_them(
    full_size: tuple[FullScan, ScreeningList],
) -> None:
    full_scan, screening = full_size
    found = 0
    for name in screened_names(screening.parties, 300, seed=23):
        expected = full_scan(name, 90)
        assert indexed(screening, name) == expected, name
        found += bool(expected)
    # The disguises are not so heavy that nothing is caught, nor so light that everything is.
    assert 150 <= found < 300


# Latin with accents, Cyrillic, CJK, Arabic, digits and punctuation.
_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyz ABCDEFG.,-'éüñç0123456789")
    + list("абвгдежзиклмнопрстуф ")
    + list("北风量子研究所华为技术有限公司")
    + list("شركةالنفطمؤسسة ")
)
_SMALL = synthetic_parties(2_000, seed=3)
_SMALL_LISTS = {t: ScreeningList(_SMALL, sha256="0" * 64, threshold=t) for t in (90, 95, 100)}
_SMALL_SCAN = FullScan(_SMALL)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    party=st.sampled_from(_SMALL),
    seed=st.integers(min_value=0, max_value=2**32),
    threshold=st.sampled_from([90, 95, 100]),
)
def test_any_disguise_of_a_listed_name_is_found_exactly_as_by_the_full_scan(
    party: ListedParty, seed: int, threshold: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 (reproducible disguises)
    name = disguise(rng.choice((party.name, *party.alt_names)), rng)
    assert indexed(_SMALL_LISTS[threshold], name) == _SMALL_SCAN(name, threshold)


@settings(max_examples=200, deadline=None)
@given(text=st.text(_ALPHABET, max_size=60), party=st.sampled_from(_SMALL))
def test_arbitrary_text_and_pieces_of_listed_names_score_as_in_the_full_scan(
    text: str, party: ListedParty
) -> None:
    # Arbitrary text alone rarely comes near a listed name; glued to a piece of
    # one it exercises the substring and shared-word paths.
    for name in (text, f"{party.name[: len(text) % 12 + 2]}{text}", f"{text} {party.name}"):
        assert indexed(_SMALL_LISTS[90], name) == _SMALL_SCAN(name, 90)


def test_below_90_the_list_scores_every_name_and_still_agrees_with_the_full_scan() -> None:
    screening = ScreeningList(_SMALL[:300], sha256="0" * 64, threshold=80)
    full_scan = FullScan(_SMALL[:300])
    rng = random.Random(7)  # noqa: S311 (reproducible disguises)
    for party in _SMALL[:40]:
        name = disguise(party.name, rng)
        assert indexed(screening, name) == full_scan(name, 80)
