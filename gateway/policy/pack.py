"""Policy packs: which country is in which tier on which day, and what each tier may receive.

A pack is loaded from TOML and validated completely before it can be used, so
a bad pack is refused at load time and never half-applies.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput
from gateway.policy.countries import iso_countries

DEFAULT_PACK = "ai-diffusion-2025"
TIERS = (1, 2, 3)


class Eccn(StrEnum):
    """Export classifications a model can carry."""

    AI_MODEL_WEIGHTS = "4E091"
    EAR99 = "EAR99"


@dataclass(frozen=True)
class Membership:
    country: str
    since: date | None
    until: date | None  # exclusive

    def active_on(self, day: date) -> bool:
        return (self.since is None or self.since <= day) and (
            self.until is None or day < self.until
        )


@dataclass(frozen=True)
class Group:
    id: str
    tier: int
    citation: str
    members: tuple[Membership, ...]


@dataclass(frozen=True)
class Rule:
    eccn: Eccn
    citation: str
    allow_tiers: frozenset[int]


@dataclass(frozen=True)
class CountryTier:
    """A country's tier on a given day, and the group (with its citation) that put it there."""

    country: str
    tier: int
    group: str | None
    citation: str


@dataclass(frozen=True)
class PolicyPack:
    name: str
    version: str
    effective_from: date
    default_tier: int
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]
    sha256: str

    def in_effect(self, day: date) -> bool:
        return day >= self.effective_from

    def tier_of(self, country: str, day: date) -> CountryTier:
        if country not in iso_countries():
            raise InvalidInput(f"{country!r} is not an ISO 3166-1 alpha-2 country code")
        for group in self.groups:
            if any(m.country == country and m.active_on(day) for m in group.members):
                return CountryTier(country, group.tier, group.id, group.citation)
        return CountryTier(
            country,
            self.default_tier,
            None,
            f"{self.name}: every country in no group is Tier {self.default_tier}",
        )

    def rule_for(self, eccn: Eccn) -> Rule | None:
        return next((rule for rule in self.rules if rule.eccn == eccn), None)


_PACK_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def load_pack(name_or_path: str, *, search_dir: Path | None = None) -> PolicyPack:
    """Load a pack: a ``.toml`` path, a name in ``search_dir``, or a shipped pack's name."""
    raw, source = read_pack(name_or_path, search_dir=search_dir)
    return parse_pack(raw, source=source)


def read_pack(name_or_path: str, *, search_dir: Path | None = None) -> tuple[bytes, str]:
    """A pack's bytes (unparsed) and where they came from, found as ``load_pack`` finds it."""
    if name_or_path.endswith(".toml"):
        return _read_file(Path(name_or_path)), name_or_path
    if not _PACK_NAME.fullmatch(name_or_path):
        raise InvalidInput(f"{name_or_path!r} is not a policy pack name")
    if search_dir is not None and (search_dir / f"{name_or_path}.toml").is_file():
        path = search_dir / f"{name_or_path}.toml"
        return _read_file(path), str(path)
    resource = resources.files("gateway.policy").joinpath(f"packs/{name_or_path}.toml")
    if not resource.is_file():
        raise InvalidInput(f"no policy pack named {name_or_path!r}")
    return resource.read_bytes(), name_or_path


def pack_names(search_dir: Path | None = None) -> list[str]:
    """The packs ``load_pack`` finds by name: the shipped ones and those in ``search_dir``.

    Only names, never paths: what a browser may choose from.
    """
    shipped = resources.files("gateway.policy").joinpath("packs")
    found = {
        item.name[: -len(".toml")] for item in shipped.iterdir() if item.name.endswith(".toml")
    }
    if search_dir is not None and search_dir.is_dir():
        found |= {path.stem for path in search_dir.glob("*.toml") if path.is_file()}
    return sorted(name for name in found if _PACK_NAME.fullmatch(name))


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read policy pack {path}: {exc.strerror}") from None


def parse_pack(raw: bytes, *, source: str) -> PolicyPack:
    """Parse and validate a whole pack; a refusal names the pack and, where it can, the line."""
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"policy pack {source}: {exc}") from None
    try:
        return _build(data, sha256=hashlib.sha256(raw).hexdigest(), lines=_Lines(text))
    except _PackError as exc:
        raise InvalidInput(f"policy pack {source}: {exc}") from None
    except KeyError as exc:
        raise InvalidInput(f"policy pack {source}: missing key {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"policy pack {source}: {exc}") from None


class _PackError(ValueError):
    pass


class _Lines:
    """Finds the line a value sits on, since tomllib reports positions only for syntax errors."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def of(self, key: str, value: str, occurrence: int = 1) -> str:
        pattern = re.compile(rf"\b{re.escape(key)}\s*=\s*\"{re.escape(value)}\"")
        seen = 0
        for number, line in enumerate(self._lines, start=1):
            if pattern.search(line.split("#", 1)[0]):
                seen += 1
                if seen == occurrence:
                    return f"line {number}: "
        return ""


def _date(value: Any, what: str) -> date:
    # A TOML date-time is a ``datetime``, which is also a ``date``; it would load
    # and then fail to compare with the day of every request.
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{what} {value!r} is not a date (YYYY-MM-DD)") from None
    raise ValueError(f"{what} must be a date (YYYY-MM-DD)")


def _tier(value: Any, what: str) -> int:
    # bool is an int subclass, and int() would truncate 2.9 or parse "2".
    if type(value) is not int or value not in TIERS:
        raise ValueError(f"{what} must be one of {TIERS}")
    return value


_MEMBER_KEYS = frozenset({"country", "since", "until"})


def _membership(raw: dict[str, Any], code: str, where: str) -> Membership:
    since = _date(raw["since"], f"{where} since") if "since" in raw else None
    until = _date(raw["until"], f"{where} until") if "until" in raw else None
    if since and until and since >= until:
        raise ValueError(f"{where} has since >= until")
    return Membership(code, since, until)


def _build(data: dict[str, Any], *, sha256: str, lines: _Lines) -> PolicyPack:
    countries = iso_countries()
    default_tier = _tier(data["default_tier"], "default_tier")
    groups: list[Group] = []
    seen: dict[str, str] = {}
    for raw_group in data["groups"]:
        group_id = str(raw_group["id"])
        try:
            tier = _tier(raw_group["tier"], f"group {group_id}: tier")
        except ValueError as exc:
            raise _PackError(f"{lines.of('id', group_id)}{exc}") from None
        members = []
        for raw_member in raw_group["members"]:
            code = str(raw_member["country"])
            at = lines.of("country", code, 2 if code in seen else 1)
            if code not in countries:
                raise _PackError(f"{at}group {group_id}: {code!r} is not an ISO 3166-1 code")
            if code in seen:
                # Dated overlaps would need interval arithmetic to rule out; a
                # pack that lists a country twice is refused until that exists.
                raise _PackError(f"{at}{code} is in both {seen[code]} and {group_id}")
            seen[code] = group_id
            unknown = set(raw_member) - _MEMBER_KEYS
            if unknown:
                raise _PackError(f"{at}group {group_id}: {code} has unknown keys {sorted(unknown)}")
            try:
                members.append(_membership(raw_member, code, f"group {group_id}: {code}"))
            except ValueError as exc:
                raise _PackError(f"{at}{exc}") from None
        groups.append(Group(group_id, tier, str(raw_group["citation"]), tuple(members)))
    rules: list[Rule] = []
    for raw in data["rules"]:
        try:
            rules.append(_rule(raw, rules))
        except ValueError as exc:
            eccn = str(raw.get("eccn"))
            nth = 1 + sum(rule.eccn.value == eccn for rule in rules)
            raise _PackError(f"{lines.of('eccn', eccn, nth)}{exc}") from None
    return PolicyPack(
        name=str(data["name"]),
        version=str(data["version"]),
        effective_from=_date(data["effective_from"], "effective_from"),
        default_tier=default_tier,
        groups=tuple(groups),
        rules=tuple(rules),
        sha256=sha256,
    )


def _rule(raw: dict[str, Any], earlier: list[Rule]) -> Rule:
    eccn = Eccn(raw["eccn"])
    if any(rule.eccn == eccn for rule in earlier):
        raise ValueError(f"two rules for {eccn.value}")
    if not isinstance(raw["allow_tiers"], list):
        raise TypeError(f"rule {eccn.value}: allow_tiers must be a list of tiers")
    allow = frozenset(_tier(t, f"rule {eccn.value}: allow_tiers") for t in raw["allow_tiers"])
    # Allowing a tier but not a less restrictive one would let a more
    # restrictive input turn a denial into an allow; such a pack is refused.
    if allow and allow != frozenset(range(1, max(allow) + 1)):
        raise ValueError(f"rule {eccn.value}: allow_tiers must be 1 up to some tier")
    return Rule(eccn, str(raw["citation"]), allow)
