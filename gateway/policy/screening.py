"""Denied-party screening against a list in the Consolidated Screening List (CSL) format.

Matching is pure: a loaded list and some names in, hits out. Names are
normalised (case, accents, punctuation, legal-form words, token order) and
compared with a weighted fuzzy ratio, so "Huawei Technologies Co., Ltd." and
"HUAWEI TECHNOLOGIES COMPANY LIMITED" match. A hit is evidence for a denial
and a human review, never a proof; a miss is not a safe harbour.

A short name (under five characters, as acronyms are) matches only as whole
words: the alias "BE" matches "BE Holdings", never "Bench", though WRatio
scores that substring 90 (see ``name_index.whole_words_allow``).

The list builds its name index once, when it is loaded: screening a name
then scores the few listed names that can match, not all of them, and finds
the same hits (see ``name_index``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput
from gateway.policy.name_index import NameIndex

DEFAULT_THRESHOLD = 90
# The version of the matching rule. A stored result made under another one is
# stale, as one made with another list is: 1 scored every name with WRatio
# alone, 2 matches short names as whole words only.
MATCHER_VERSION = 2
# Legal-form words say nothing about who an entity is; dropping them keeps
# "Acme Ltd" and "Acme Limited Company" from looking like different parties.
_LEGAL_FORMS = frozenset(
    {
        "co",
        "company",
        "corp",
        "corporation",
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "gmbh",
        "ag",
        "sa",
        "sarl",
        "bv",
        "nv",
        "plc",
        "pte",
        "pvt",
        "oao",
        "ooo",
        "zao",
        "jsc",
        "pjsc",
        "kk",
        "the",
        "of",
    }
)
_NON_WORD = re.compile(r"[^\w]+")
_JOINERS = str.maketrans("", "", ".'\u2019")


def normalise(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    # "S.A." is one word, and so is "d'Electronique": join before splitting.
    plain = plain.translate(_JOINERS)
    # Sorted and without repeats: word order and stutters say nothing about who
    # an entity is, and the index relies on one spelling per set of words.
    tokens = {t for t in _NON_WORD.split(plain) if t and t not in _LEGAL_FORMS}
    return " ".join(sorted(tokens))


@dataclass(frozen=True)
class ListedParty:
    id: str
    source: str
    name: str
    alt_names: tuple[str, ...]


@dataclass(frozen=True)
class ScreeningHit:
    entry_id: str
    source: str
    listed_name: str
    screened_name: str
    score: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "source": self.source,
            "listed_name": self.listed_name,
            "screened_name": self.screened_name,
            "score": self.score,
        }


class ScreeningList:
    def __init__(self, parties: Iterable[ListedParty], *, sha256: str, threshold: int) -> None:
        if not 50 <= threshold <= 100:
            raise InvalidInput("the screening threshold must be between 50 and 100")
        self.parties = tuple(parties)
        self.sha256 = sha256
        self.threshold = threshold
        self._names: list[str] = []
        self._owners: list[tuple[ListedParty, str]] = []
        for party in self.parties:
            for name in (party.name, *party.alt_names):
                normalised = normalise(name)
                if normalised:
                    self._names.append(normalised)
                    self._owners.append((party, name))
        self._index = NameIndex(self._names, threshold)

    def screen(self, names: Iterable[str]) -> list[ScreeningHit]:
        """Every listed party one of ``names`` matches, best match per party."""
        best: dict[str, ScreeningHit] = {}
        for screened in names:
            query = normalise(screened)
            if not query:
                continue
            for position, score in self._index.matches(query):
                party, listed = self._owners[position]
                hit = ScreeningHit(party.id, party.source, listed, screened, round(score))
                if party.id not in best or hit.score > best[party.id].score:
                    best[party.id] = hit
        return sorted(best.values(), key=lambda h: (-h.score, h.entry_id))


def load_screening_list(path: Path, *, threshold: int = DEFAULT_THRESHOLD) -> ScreeningList:
    """Load a CSL download: the CSV file, or the JSON API's ``{"results": [...]}``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read screening list {path}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
        parties = _from_json(text) if path.suffix.lower() == ".json" else _from_csv(text)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"screening list {path}: {exc}") from None
    return ScreeningList(parties, sha256=hashlib.sha256(raw).hexdigest(), threshold=threshold)


def _from_csv(text: str) -> list[ListedParty]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"_id", "source", "name"} - set(reader.fieldnames or ())
    if missing:
        raise ValueError(f"missing CSL columns {sorted(missing)}")
    parties = []
    for line, row in enumerate(reader, start=2):
        if not row["name"]:
            raise ValueError(f"line {line}: entry {row['_id']!r} has no name")
        aliases = tuple(a.strip() for a in (row.get("alt_names") or "").split(";") if a.strip())
        parties.append(ListedParty(row["_id"], row["source"], row["name"], aliases))
    return parties


def _from_json(text: str) -> list[ListedParty]:
    data = json.loads(text)
    results = data["results"] if isinstance(data, dict) else data
    parties = []
    for index, item in enumerate(results):
        if not item.get("name"):
            raise ValueError(f"result {index}: entry {item.get('id')!r} has no name")
        aliases = tuple(str(a) for a in item.get("alt_names") or ())
        parties.append(
            ListedParty(str(item["id"]), str(item["source"]), str(item["name"]), aliases)
        )
    return parties
