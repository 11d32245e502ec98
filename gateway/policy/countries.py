"""ISO 3166-1 alpha-2 codes: the only country identifiers the policy accepts."""

from __future__ import annotations

import csv
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
        raise InvalidInput(f"{what} {value!r} is not an ISO 3166-1 alpha-2 country code")
    return code
