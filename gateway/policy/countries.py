"""ISO 3166-1 alpha-2 codes: the only country identifiers the policy accepts."""

from __future__ import annotations

import csv
import difflib
import re
import unicodedata
from functools import cache
from importlib import resources

from gateway.errors import InvalidInput


@cache
def iso_countries() -> dict[str, str]:
    """Every assigned ISO 3166-1 alpha-2 code and its English short name."""
    text = resources.files("gateway.policy").joinpath("packs/iso3166-1.csv").read_text("utf-8")
    return {row["code"]: row["name"] for row in csv.DictReader(text.splitlines())}


def country_code(value: str, *, what: str = "country") -> str:
    """Validate a country code; an unknown code is an error, never a default tier."""
    stripped = value.strip()
    # Upper-case only ASCII: str.upper() folds "\u0131t" to "IT" and "\ufb01" to "FI".
    code = stripped.upper() if stripped.isascii() else stripped
    if code not in iso_countries():
        hint = suggest_country(stripped)
        guess = f"; did you mean {hint} ({iso_countries()[hint]})?" if hint else ""
        raise InvalidInput(f"{what} {value!r} is not an ISO 3166-1 alpha-2 country code{guess}")
    return code


# Longer than any country's name: anything beyond is not a mistyped name.
_MAX_NAME = 64


def _folded(text: str) -> str:
    """Lower case, without accents or punctuation: "Türkiye" and "turkiye" meet."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", letters).split())


@cache
def _names() -> dict[str, str]:
    """Each way a country's name is written in the ISO list, folded, to its code.

    "Korea, Republic of (South Korea)" gives the whole name, the part before
    the parenthesis and the part inside it.
    """
    names: dict[str, str] = {}
    for code, name in iso_countries().items():
        short, _, aside = name.partition("(")
        for variant in (name, short, aside.rstrip(")")):
            if folded := _folded(variant):
                names.setdefault(folded, code)
    return names


def suggest_country(value: str) -> str | None:
    """The code a mistyped country most likely meant (``germany`` -> ``DE``), or None.

    Only a suggestion for an error message: a name is never accepted in place
    of a code, so what the policy decides on is always what the caller wrote.
    """
    if len(value) > _MAX_NAME:
        return None
    folded = _folded(value)
    if not folded:
        return None
    names = _names()
    if folded in names:
        return names[folded]
    close = difflib.get_close_matches(folded, names, n=1, cutoff=0.75)
    return names[close[0]] if close else None
