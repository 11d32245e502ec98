"""The name index finds every party the full WRatio scan finds, at the full list's size.

The reference here is written again from rapidfuzz, independently of the
index: every listed name scored against the screened one, and a pair kept
only if a short name in it (under five characters, not Chinese or Japanese)
is whole words of the other. A listed party the index missed would be a
denied party granted; a party it found that the scan did not would be a
score the scan disagrees with.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process

from benchmarks.screening import disguise, screened_names, synthetic_parties
from gateway.policy.screening import ListedParty, ScreeningList, normalise

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _words_fit(short: str, other: str) -> bool:
    """True unless ``short`` is a short name with a word ``other`` lacks."""
    if len(short) >= 5 or _CJK.search(short):
        return True
    return all(word in other.split() for word in short.split())


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
                listed = self._names[position]
                if not (_words_fit(query, listed) and _words_fit(listed, query)):
                    continue
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


_SHORT_ALIASES = [
    (party, alias) for party in _SMALL for alias in party.alt_names if len(normalise(alias)) < 5
]


@settings(max_examples=200, deadline=None)
@given(
    pair=st.sampled_from(_SHORT_ALIASES),
    text=st.text(_ALPHABET, max_size=20),
    threshold=st.sampled_from([90, 95, 100]),
)
def test_short_listed_names_are_found_as_whole_words_exactly_as_by_the_full_scan(
    pair: tuple[ListedParty, str], text: str, threshold: int
) -> None:
    party, alias = pair
    names = (alias, f"{alias} {text}", f"{alias}{text}", f"{text}{alias.lower()}", text[:4])
    for name in names:
        assert indexed(_SMALL_LISTS[threshold], name) == _SMALL_SCAN(name, threshold), name
    assert party.id in {hit.entry_id for hit in _SMALL_LISTS[threshold].screen([alias])}


def test_a_short_alias_inside_a_word_is_not_found_and_as_a_word_it_is() -> None:
    party = ListedParty("X-1", "EL", "Bereznik Electronics", ("BE",))
    screening = ScreeningList([*_SMALL, party], sha256="0" * 64, threshold=90)
    full_scan = FullScan([*_SMALL, party])
    assert "X-1" not in {e for e, _ in indexed(screening, "Bench")}
    assert ("X-1", 90) in indexed(screening, "BE Holdings")
    for name in ("Bench", "BE Holdings"):
        assert indexed(screening, name) == full_scan(name, 90)
