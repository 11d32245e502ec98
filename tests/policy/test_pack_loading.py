"""Loading policy packs: a bad pack is refused whole, at load, with a message naming the fault.

A pack that half-loads, or loads and fails only when a request arrives, is the
failure these stop: the operator must learn of the fault when they deploy it,
not from a 500 on the first download.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pytest

import gateway.policy
from gateway.errors import InvalidInput
from gateway.policy.decision import DecisionRequest, decide
from gateway.policy.pack import DEFAULT_PACK, Eccn, PolicyPack, load_pack, parse_pack

# A small valid pack; each bad pack below is this one with one fault put in.
VALID = """\
name = "test-pack"
version = "1"
effective_from = "2025-01-15"
default_tier = 2

[[groups]]
id = "t1"
tier = 1
citation = "tier one"
members = [
  { country = "DE" },
  { country = "US", since = "2025-01-15" },
]

[[groups]]
id = "t3"
tier = 3
citation = "tier three"
members = [
  { country = "CN" },
  { country = "KH", until = "2026-02-03" },
]

[[rules]]
eccn = "4E091"
citation = "weights rule"
allow_tiers = [1]

[[rules]]
eccn = "EAR99"
citation = "ear99 rule"
allow_tiers = [1, 2]
"""


def _variant(old: str, new: str) -> str:
    assert old in VALID, f"{old!r} is not in the base pack"
    return VALID.replace(old, new, 1)


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "pack.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _refusal(tmp_path: Path, text: str | bytes) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(InvalidInput) as caught:
        load_pack(str(path))
    message = caught.value.message
    prefix = f"policy pack {path}: "
    assert message.startswith(prefix), "the message must say which pack was refused"
    return message.removeprefix(prefix)


def test_the_base_pack_of_these_tests_is_valid(tmp_path: Path) -> None:
    # Without this, every refusal below could be the base pack's own fault.
    pack = load_pack(str(_write(tmp_path, VALID)))
    assert (pack.name, pack.version, pack.default_tier) == ("test-pack", "1", 2)
    assert pack.effective_from == date(2025, 1, 15)
    assert pack.tier_of("KH", date(2026, 2, 2)).tier == 3
    assert pack.tier_of("KH", date(2026, 2, 3)).tier == 2
    assert pack.tier_of("US", date(2025, 1, 14)).tier == 2
    assert pack.tier_of("US", date(2025, 1, 15)).tier == 1
    assert pack.sha256 == hashlib.sha256(VALID.encode()).hexdigest()


# Missing and malformed fields -----------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("default_tier = 2\n", "default_tier"),
        ('name = "test-pack"\n', "name"),
        ('version = "1"\n', "version"),
        ('effective_from = "2025-01-15"\n', "effective_from"),
    ],
)
def test_pack_missing_a_required_key_is_refused(tmp_path: Path, line: str, key: str) -> None:
    assert key in _refusal(tmp_path, _variant(line, ""))


def test_pack_without_rules_is_refused(tmp_path: Path) -> None:
    without_rules = VALID[: VALID.index("[[rules]]")]
    assert "rules" in _refusal(tmp_path, without_rules)


def test_group_without_citation_is_refused(tmp_path: Path) -> None:
    assert "citation" in _refusal(tmp_path, _variant('citation = "tier one"\n', ""))


@pytest.mark.parametrize("code", ["XX", "de", "DEU", "", "EU"])
def test_non_iso_country_in_a_group_is_refused(tmp_path: Path, code: str) -> None:
    message = _refusal(tmp_path, _variant('{ country = "DE" }', f'{{ country = "{code}" }}'))
    assert f"{code!r} is not an ISO 3166-1 code" in message
    assert "t1" in message


def test_country_in_two_groups_is_refused(tmp_path: Path) -> None:
    # DE in Tier 1 and Tier 3 at once: which applies would depend on file order.
    message = _refusal(tmp_path, _variant('{ country = "CN" }', '{ country = "DE" }'))
    assert "DE is in both t1 and t3" in message


def test_country_listed_twice_in_one_group_is_refused(tmp_path: Path) -> None:
    message = _refusal(
        tmp_path, _variant('{ country = "CN" },', '{ country = "CN" },\n  { country = "CN" },')
    )
    assert "CN is in both t3 and t3" in message


@pytest.mark.parametrize("until", ["2026-02-03", "2026-01-01"])
def test_membership_that_ends_before_it_starts_is_refused(tmp_path: Path, until: str) -> None:
    message = _refusal(
        tmp_path,
        _variant('until = "2026-02-03"', f'since = "2026-02-03", until = "{until}"'),
    )
    assert "KH has since >= until" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("tier = 3", "tier = 4", "group t3: tier must be one of (1, 2, 3)"),
        ("tier = 3", "tier = 0", "group t3: tier must be one of (1, 2, 3)"),
        ("default_tier = 2", "default_tier = 4", "default_tier must be one of (1, 2, 3)"),
    ],
)
def test_tier_outside_one_to_three_is_refused(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert expected in _refusal(tmp_path, _variant(old, new))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        # A boolean is not a tier; int(True) would quietly make it Tier 1.
        ("tier = 3", "tier = true"),
        # A fractional tier is a typo; int(2.9) would quietly make it Tier 2.
        ("tier = 3", "tier = 2.9"),
        # A rule allowing a tier that does not exist is a typo for one that does.
        ("allow_tiers = [1, 2]", "allow_tiers = [1, 4]"),
        ("allow_tiers = [1]", "allow_tiers = [0]"),
        # A string is not a list of tiers; iterating "12" would allow Tiers 1 and 2.
        ("allow_tiers = [1, 2]", 'allow_tiers = "12"'),
        # A word is not a tier; the refusal should say which field is wrong.
        ("default_tier = 2", 'default_tier = "two"'),
    ],
)
def test_tier_value_that_is_not_an_integer_from_one_to_three_is_refused(
    tmp_path: Path, old: str, new: str
) -> None:
    assert "tier" in _refusal(tmp_path, _variant(old, new))


def test_unknown_eccn_in_rules_is_refused(tmp_path: Path) -> None:
    assert "'4E999'" in _refusal(tmp_path, _variant('eccn = "EAR99"', 'eccn = "4E999"'))


def test_two_rules_for_one_eccn_are_refused(tmp_path: Path) -> None:
    # Only the first would ever apply, so a reader of the pack could not tell
    # from the second which tiers may really receive EAR99 items.
    message = _refusal(tmp_path, _variant('eccn = "EAR99"', 'eccn = "4E091"'))
    assert "4E091" in message


@pytest.mark.parametrize("tiers", ["[2]", "[1, 3]", "[2, 3]"])
def test_rule_allowing_a_restrictive_tier_but_not_a_lenient_one_is_refused(
    tmp_path: Path, tiers: str
) -> None:
    # With allow_tiers = [2], a Tier 1 requester whose IP is in a Tier 2
    # country would turn a denial into an allow by adding a restrictive input.
    message = _refusal(tmp_path, _variant("allow_tiers = [1, 2]", f"allow_tiers = {tiers}"))
    assert "allow_tiers must be 1 up to some tier" in message


def test_misspelt_membership_key_is_refused_not_ignored(tmp_path: Path) -> None:
    # Ignored, "untill" would keep Cambodia in Tier 3 for ever; the same typo on
    # a Tier 1 member would keep it in Tier 1 after it should have left.
    message = _refusal(tmp_path, _variant('until = "2026-02-03"', 'untill = "2026-02-03"'))
    assert "untill" in message


# Dates ----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["not-a-date", "2026-02-30", "2026-13-01"])
def test_bad_date_string_is_refused_naming_the_field_and_value(tmp_path: Path, value: str) -> None:
    message = _refusal(tmp_path, _variant('until = "2026-02-03"', f'until = "{value}"'))
    assert "until" in message
    assert value in message


def test_bad_effective_from_is_refused(tmp_path: Path) -> None:
    message = _refusal(
        tmp_path, _variant('effective_from = "2025-01-15"', 'effective_from = "15/01/2025"')
    )
    assert "15/01/2025" in message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('until = "2026-02-03"', "until = 5"),
        ('since = "2025-01-15"', "since = true"),
        ('since = "2025-01-15"', "since = 10:00:00"),
    ],
)
def test_non_date_value_for_a_date_is_refused(tmp_path: Path, old: str, new: str) -> None:
    assert "must be a date" in _refusal(tmp_path, _variant(old, new))


def test_native_toml_dates_are_accepted(tmp_path: Path) -> None:
    text = _variant('effective_from = "2025-01-15"', "effective_from = 2025-01-15")
    text = text.replace('until = "2026-02-03"', "until = 2026-02-03")
    pack = load_pack(str(_write(tmp_path, text)))
    assert pack.effective_from == date(2025, 1, 15)
    assert pack.tier_of("KH", date(2026, 2, 3)).tier == 2


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('effective_from = "2025-01-15"', "effective_from = 2025-01-15T00:00:00"),
        ('until = "2026-02-03"', "until = 2026-02-03T00:00:00"),
        ('since = "2025-01-15"', "since = 2025-01-15T09:00:00Z"),
    ],
)
def test_date_time_where_a_date_is_due_is_refused_at_load_not_at_decision(
    tmp_path: Path, old: str, new: str
) -> None:
    # TOML datetimes are ``datetime`` objects, which pass isinstance(..., date);
    # comparing one with the day of a request raises TypeError on the first
    # decision. The pack must be refused before it can serve a request.
    _refusal(tmp_path, _variant(old, new))


def test_accepted_pack_never_crashes_a_decision(tmp_path: Path) -> None:
    # The other half of the date-time fault above, shown from the request side:
    # whatever a pack holds, once it loads, deciding on it must work.
    text = _variant('until = "2026-02-03"', "until = 2026-02-03T00:00:00")
    try:
        pack = load_pack(str(_write(tmp_path, text)))
    except InvalidInput:
        return  # Refused at load, as it should be.
    request = DecisionRequest(
        location="KH",
        org_hq="US",
        parent_hq=None,
        ip_country=None,
        eccn=Eccn.EAR99,
        on=date(2026, 1, 1),
    )
    assert decide(request, pack).effect == "deny"


# Syntax and sources -----------------------------------------------------------------


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    message = _refusal(tmp_path, _variant("default_tier = 2", "default_tier = = 2"))
    assert "line" in message


def test_pack_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    raw = _variant('citation = "tier one"', 'citation = "tier \xff"').encode("latin-1")
    assert "utf-8" in _refusal(tmp_path, raw)


def test_parse_pack_names_its_source_in_the_refusal() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_pack(_variant("default_tier = 2\n", "").encode(), source="operator-upload")
    assert caught.value.message.startswith("policy pack operator-upload:")
    assert "default_tier" in caught.value.message


def test_unknown_pack_name_is_refused() -> None:
    with pytest.raises(InvalidInput, match="no policy pack named 'ai-diffusion-2099'"):
        load_pack("ai-diffusion-2099")


def test_pack_name_cannot_reach_a_file_that_is_not_a_pack() -> None:
    # The ISO list sits beside the packs; a name must not load it (or anything
    # else) as a pack.
    with pytest.raises(InvalidInput):
        load_pack("iso3166-1")


def test_missing_pack_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(InvalidInput, match="cannot read policy pack"):
        load_pack(str(path))


# The shipped pack -------------------------------------------------------------------


def test_default_pack_hash_is_the_hash_of_the_shipped_file() -> None:
    pack = load_pack(DEFAULT_PACK)
    shipped = Path(gateway.policy.__file__).parent / "packs" / f"{DEFAULT_PACK}.toml"
    assert len(pack.sha256) == 64
    assert set(pack.sha256) <= set("0123456789abcdef")
    assert pack.sha256 == hashlib.sha256(shipped.read_bytes()).hexdigest()


def test_default_pack_loaded_by_path_is_the_same_pack(tmp_path: Path) -> None:
    shipped = Path(gateway.policy.__file__).parent / "packs" / f"{DEFAULT_PACK}.toml"
    copy = tmp_path / "copy.toml"
    copy.write_bytes(shipped.read_bytes())
    by_name, by_path = load_pack(DEFAULT_PACK), load_pack(str(copy))
    assert by_path == by_name


def test_one_changed_byte_changes_the_pack_hash(tmp_path: Path) -> None:
    # Decisions record the hash, so two packs that differ at all must not share it.
    original = load_pack(str(_write(tmp_path, VALID)))
    changed = load_pack(str(_write(tmp_path, VALID.replace('version = "1"', 'version = "2"'))))
    assert original.sha256 != changed.sha256


def test_default_pack_metadata() -> None:
    pack: PolicyPack = load_pack(DEFAULT_PACK)
    assert pack.name == DEFAULT_PACK
    assert pack.effective_from == date(2025, 1, 15)
    assert pack.default_tier == 2
    weights = pack.rule_for(Eccn.AI_MODEL_WEIGHTS)
    ear99 = pack.rule_for(Eccn.EAR99)
    assert weights is not None
    assert ear99 is not None
    assert weights.allow_tiers == frozenset({1})
    assert ear99.allow_tiers == frozenset({1, 2})


def _line(text: str) -> int:
    return next(n for n, line in enumerate(VALID.splitlines(), start=1) if text in line)


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ('{ country = "CN" },', '{ country = "XQ" },', '{ country = "CN" },'),
        ('{ country = "CN" },', '{ country = "DE" },', '{ country = "CN" },'),
        ('until = "2026-02-03"', 'until = "2026-02-30"', 'until = "2026-02-03"'),
        ('eccn = "EAR99"', 'eccn = "4E091"', 'eccn = "EAR99"'),
        ("tier = 3", "tier = 4", 'id = "t3"'),
    ],
    ids=["unknown-country", "country-twice", "bad-date", "duplicate-rule", "bad-tier"],
)
def test_refusal_names_the_line_of_the_mistake(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    assert _refusal(tmp_path, _variant(old, new)).startswith(f"line {_line(where)}: ")
