"""An index over normalised listed names that finds every WRatio match without scoring them all.

Scoring one name against 30,000 with ``WRatio`` costs about 30 ms; this index
picks the few names that can reach the cutoff and scores only those, with the
same scorer, so a hit's score is the one the full scan would give.

Why no match is missed (names are normalised: tokens sorted, deduplicated and
joined by one space, see ``screening.normalise``). ``WRatio(q, c) >= cutoff``
holds only through one of its parts:

1. ``ratio(q, c) >= cutoff``. The ratio is at most ``2 min(len) / (len q + len c)``,
   so only names in a length window can reach it; the cheap ``ratio`` scores
   that window. ``token_sort_ratio`` equals ``ratio`` on sorted tokens.
2. ``token_set_ratio * 0.95 >= cutoff`` (lengths within 1.5x of each other),
   so ``token_set_ratio >= cutoff / 0.95``. With no token in common it is the
   ratio of the two strings (part 1). With some in common it is one of:
   one side's words all in the other (100); the words in common against
   those plus one side's others, which needs the others to be short, so that
   every long word of that side is in common; or the two strings with the
   common words put first, which keeps enough of the query's in-word
   trigrams (as in part 1) to be found by its rarest ones.
3. ``partial_ratio * 0.9 >= cutoff`` (lengths 1.5x to 8x apart). From a cutoff
   of 90 this needs a score of 100: the shorter string is a substring of the
   longer. A listed name containing the query contains the query's rarest
   trigram; a listed name contained in the query has its own rarest trigram
   in the query. Names under three characters (CJK names often are) use
   single characters instead. ``partial_token_ratio`` is scaled to at most
   85.5 and never reaches such a cutoff.

Below a cutoff of 90, part 3 would be fuzzy substrings, which no gram can
block: the index then scores every name, as the full scan does.

Short names (``is_short``) match only as whole words (``whole_words_allow``),
whatever WRatio says: a short listed name is filed under one of its words and
found by the query's words, and a short query finds the names that have its
rarest word. The parts above then cover long names only.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence

from rapidfuzz import fuzz, process

# From this cutoff on, a partial match must be an exact substring (part 3 above).
INDEXED_FROM = 90
_GRAM = 3
# WRatio compares whole strings below this length ratio and substrings from it.
_PARTIAL_FROM = 1.5
# From this length ratio on, WRatio scales substring scores to at most 60.
_PARTIAL_UNTIL = 8
# A normalised name shorter than this is matched as whole words only: two to
# four letters (an acronym such as "BE") sit inside many unrelated longer
# names ("Bench"), and WRatio scores such a substring 90.
SHORT_NAME = 5
# Scripts written without spaces between words: a short name in them is a
# whole name and is routinely part of the longer registered one.
_IDEOGRAPHS = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def is_short(name: str) -> bool:
    """Whether the normalised ``name`` is too short to be found inside other words."""
    return len(name) < SHORT_NAME and not _IDEOGRAPHS.search(name)


def whole_words_allow(query: str, name: str) -> bool:
    """Whether a short one of two normalised names consists of words of the other.

    The rule comes before the score: "be" may match "be holdings" (if WRatio
    agrees) but never "bench".
    """
    query_words, name_words = set(query.split()), set(name.split())
    if is_short(query) and not query_words <= name_words:
        return False
    return not (is_short(name) and not name_words <= query_words)


class _Postings:
    """Positions of the names that have some key, kept sorted by name length."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self._name_lengths = lengths
        self._lists: dict[str, list[int]] = defaultdict(list)
        self._lengths: dict[str, list[int]] = {}

    def add(self, key: str, position: int) -> None:
        self._lists[key].append(position)

    def freeze(self) -> None:
        for key, positions in self._lists.items():
            positions.sort(key=self._name_lengths.__getitem__)
            self._lengths[key] = [self._name_lengths[p] for p in positions]
        self._lists = dict(self._lists)

    def size(self, key: str) -> int:
        return len(self._lengths.get(key, ()))

    def within(self, key: str, shortest: float, longest: float) -> list[int]:
        """Positions under ``key`` whose name length lies in [shortest, longest]."""
        lengths = self._lengths.get(key)
        if lengths is None:
            return []
        low = bisect.bisect_left(lengths, shortest)
        high = bisect.bisect_right(lengths, longest)
        return self._lists[key][low:high]


def _grams(name: str) -> set[str]:
    """Trigrams of ``name``, or its characters when it is shorter than a trigram."""
    if len(name) < _GRAM:
        return set(name)
    return {name[i : i + _GRAM] for i in range(len(name) - _GRAM + 1)}


class NameIndex:
    """Built once per loaded list and cutoff; ``matches`` is the only question it answers."""

    def __init__(self, names: Sequence[str], cutoff: float) -> None:
        self._names = list(names)
        self.cutoff = cutoff
        self._exhaustive = cutoff < INDEXED_FROM
        # The share a token-set match needs, and the share of a name's length
        # that its words outside the common ones may take (part 2).
        self._set_share = cutoff / 95
        self._light = 2 / self._set_share - 2
        lengths = [len(n) for n in self._names]
        self._order = sorted(range(len(lengths)), key=lengths.__getitem__)
        self._sorted_names = [self._names[p] for p in self._order]
        self._sorted_lengths = [lengths[p] for p in self._order]
        self._tokens = _Postings(lengths)
        self._grams = _Postings(lengths)
        self._chars = _Postings(lengths)
        self._keyed = _Postings(lengths)
        self._keyed_tokens = _Postings(lengths)
        self._short = _Postings(lengths)
        self._short_positions: frozenset[int] = frozenset()
        if self._exhaustive:
            return
        name_grams: list[set[str]] = []
        for position, name in enumerate(self._names):
            for token in set(name.split()):
                self._tokens.add(token, position)
            if is_short(name):
                # All its words must be in the query: any one of them finds it.
                self._short.add(name.split()[0], position)
                name_grams.append(set())
                continue
            grams = _grams(name)
            name_grams.append(grams)
            for gram in grams:
                self._grams.add(gram, position)
            for char in set(name):
                self._chars.add(char, position)
        self._tokens.freeze()
        self._grams.freeze()
        self._chars.freeze()
        self._short.freeze()
        self._short_positions = frozenset(p for p, n in enumerate(self._names) if is_short(n))
        for position, grams in enumerate(name_grams):
            if not grams:
                continue  # short, or empty
            self._keyed.add(min(grams, key=self._grams.size), position)
            heavy = self._heavy(self._names[position])
            for token in (
                [min(heavy, key=self._tokens.size)] if heavy else self._names[position].split()
            ):
                self._keyed_tokens.add(token, position)
        self._keyed.freeze()
        self._keyed_tokens.freeze()

    def __len__(self) -> int:
        return len(self._names)

    def matches(self, query: str) -> list[tuple[int, float]]:
        """Each (position, WRatio score) at or above the cutoff that whole words allow.

        What the full scan finds: every name scored, those short names kept
        that ``whole_words_allow``.
        """
        if not query:
            return []
        if self._exhaustive:
            return [
                (position, score)
                for _, score, position in process.extract(
                    query, self._names, scorer=fuzz.WRatio, score_cutoff=self.cutoff, limit=None
                )
                if whole_words_allow(query, self._names[position])
            ]
        words = set(query.split())
        if is_short(query):
            # A name with all the query's words has its rarest one; WRatio
            # cannot reach the cutoff for names 8 times longer or more.
            rarest = min(words, key=self._tokens.size)
            candidates = {
                p
                for p in self._tokens.within(rarest, 0, len(query) * _PARTIAL_UNTIL)
                if whole_words_allow(query, self._names[p])
            }
        else:
            # Short names reach the parts above only by accident; they are
            # found here, by the query's words, and only as whole words.
            candidates = self._candidates(query) - self._short_positions
            for token in words:
                candidates.update(
                    p
                    for p in self._short.within(token, 0, math.inf)
                    if set(self._names[p].split()) <= words
                )
        return self._scored(query, sorted(candidates), fuzz.WRatio)

    def _scored(
        self, query: str, positions: Sequence[int], scorer: Callable[..., float]
    ) -> list[tuple[int, float]]:
        """(position, score) of the names at ``positions`` that reach the cutoff."""
        choices = [self._names[p] for p in positions]
        return [
            (positions[offset], score)
            for _, score, offset in process.extract(
                query, choices, scorer=scorer, score_cutoff=self.cutoff, limit=None
            )
        ]

    def _heavy(self, name: str) -> list[str]:
        """The words of ``name`` too long to be left out of a token-set match (part 2)."""
        limit = self._light * len(name) + 1e-9
        return [token for token in name.split() if len(token) >= limit]

    def _candidates(self, query: str) -> set[int]:
        size = len(query)
        found: set[int] = set()
        # Part 1: whole-string ratio.
        found.update(self._close_by_ratio(query))
        # Part 2, lengths less than 1.5x apart: the query's long words all in
        # the name (the rarest one finds it), or the name's long words all in
        # the query (the name is filed under its rarest one).
        shortest, longest = size / _PARTIAL_FROM, size * _PARTIAL_FROM
        words = query.split()
        heavy = self._heavy(query)
        for token in [min(heavy, key=self._tokens.size)] if heavy else words:
            found.update(self._tokens.within(token, shortest, longest))
        for token in words:
            found.update(self._keyed_tokens.within(token, shortest, longest))
        # Part 2, common words first: the query's in-word trigrams.
        in_words = set().union(*(_grams(w) for w in words if len(w) >= _GRAM))
        found.update(self._sharing_grams(query, in_words, self._set_share, words) or ())
        # Part 3a: listed names that contain the query.
        grams = _grams(query)
        postings = self._grams if size >= _GRAM else self._chars
        rarest = min(grams, key=postings.size)
        found.update(postings.within(rarest, size * _PARTIAL_FROM, math.inf))
        # Part 3b: listed names the query contains, each found by its own rarest gram.
        for gram in grams | set(query):
            found.update(self._keyed.within(gram, 0, size / _PARTIAL_FROM))
        return found

    def _close_by_ratio(self, query: str) -> list[int]:
        """Names whose ``ratio`` with ``query`` reaches the cutoff."""
        positions = self._sharing_grams(query, _grams(query), self.cutoff / 100, None)
        if positions is None:
            shortest, longest = _window(len(query), self.cutoff / 100)
            low = bisect.bisect_left(self._sorted_lengths, shortest)
            high = bisect.bisect_right(self._sorted_lengths, longest)
            return [
                self._order[low + offset]
                for _, _, offset in process.extract(
                    query,
                    self._sorted_names[low:high],
                    scorer=fuzz.ratio,
                    score_cutoff=self.cutoff,
                    limit=None,
                )
            ]
        return [position for position, _ in self._scored(query, list(positions), fuzz.ratio)]

    def _sharing_grams(
        self, query: str, grams: set[str], share: float, words: list[str] | None
    ) -> set[int] | None:
        """Names in the length window of ``share`` that keep enough of ``grams``.

        A name within indel distance ``d`` of the query keeps every trigram of
        the query that no deleted character touches (three each) and no
        inserted one splits (two each), so it shares at least
        ``len(grams) - loss`` of them, and so one of the ``loss + 1`` rarest.
        When the bound says nothing (short queries), every name in the window
        that shares a word (``words``) or, without words, None: the caller
        scores the whole window.
        """
        size = len(query)
        shortest, longest = _window(size, share)
        loss = max(
            (_trigram_loss(size, length, share) for length in range(max(shortest, 1), longest + 1)),
            default=0,
        )
        if size >= _GRAM and loss < len(grams):
            positions: set[int] = set()
            for gram in sorted(grams, key=self._grams.size)[: loss + 1]:
                positions.update(self._grams.within(gram, shortest, longest))
            return positions
        if words is None:
            return None
        positions = set()
        for token in words:
            positions.update(self._tokens.within(token, shortest, longest))
        return positions


def _window(size: int, share: float) -> tuple[int, int]:
    """The name lengths whose ratio with a query of ``size`` can reach ``share``.

    The ratio is at most ``2 min / (len q + len c)``; widened by one character
    against rounding.
    """
    return math.floor(size * share / (2 - share)) - 1, math.ceil(size * (2 - share) / share) + 1


def _trigram_loss(size: int, length: int, share: float) -> int:
    """How many of a query's distinct trigrams a name of ``length`` can lack and still reach."""
    # The largest indel distance the ratio allows, then the fewest characters in common.
    distance = math.floor((1 - share) * (size + length) + 1e-9)
    common = math.ceil((size + length - distance) / 2)
    deleted, inserted = size - common, length - common
    if deleted < 0 or inserted < 0:
        return 0
    return 3 * deleted + 2 * inserted
