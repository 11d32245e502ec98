"""Denied-party screening: listed parties are caught through spelling games, others are not."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.errors import InvalidInput
from gateway.policy.decision import DecisionRequest, decide
from gateway.policy.pack import Eccn, load_pack
from gateway.policy.screening import (
    ListedParty,
    ScreeningList,
    load_screening_list,
    normalise,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"


@pytest.fixture(params=["csl-synthetic.csv", "csl-synthetic.json"])
def csl_path(request: pytest.FixtureRequest) -> Path:
    path: Path = FIXTURES / request.param
    return path


@pytest.mark.parametrize(
    ("name", "entry"),
    [
        ("Northwind Quantum Computing Research Institute Co. Ltd.", "SYN-EL-0001"),
        ("NORTHWIND QUANTUM COMPUTING RESEARCH INSTITUTE COMPANY LIMITED", "SYN-EL-0001"),
        ("Research Institute Northwind Quantum Computing", "SYN-EL-0001"),
        ("Northwind Quantum Computng Research Institute", "SYN-EL-0001"),
        ("northwind qcri", "SYN-EL-0001"),
        ("Zagros Compute LLC", "SYN-SDN-0002"),
        ("Zagros Advanced Compute Co.", "SYN-SDN-0002"),
    ],
    ids=[
        "exact",
        "shouting-and-legal-form",
        "token-order",
        "typo",
        "alias",
        "alias-new-form",
        "abbreviated-form",
    ],
)
def test_listed_party_is_caught_through_spelling_games(
    csl_path: Path, name: str, entry: str
) -> None:
    hits = load_screening_list(csl_path).screen([name])
    assert [hit.entry_id for hit in hits][:1] == [entry]
    assert hits[0].source
    assert hits[0].score >= 90


def test_accents_do_not_hide_a_listed_party() -> None:
    hits = load_screening_list(FIXTURES / "csl-synthetic.csv").screen(
        ["Societe Generale d'Electronique Speciale"]
    )
    assert [hit.entry_id for hit in hits] == ["SYN-MEU-0003"]


@pytest.mark.parametrize(
    "name",
    ["Rhein AI GmbH", "Northwind Bakery", "Quantum Computing Inc", "Zagreb Software", "Co. Ltd."],
)
def test_unrelated_names_are_not_flagged(name: str) -> None:
    assert load_screening_list(FIXTURES / "csl-synthetic.csv").screen([name]) == []


def test_normalisation_drops_case_accents_punctuation_and_legal_forms() -> None:
    assert normalise("Société Générale, S.A.") == normalise("SOCIETE GENERALE")
    assert normalise("Acme Ltd.") == normalise("The Acme Limited Company") == "acme"


def test_a_screening_hit_denies_even_in_tier_1_and_names_the_entry() -> None:
    [hit] = load_screening_list(FIXTURES / "csl-synthetic.csv").screen(["Zagros Compute"])
    request = DecisionRequest(
        location="DE",
        org_hq="DE",
        parent_hq=None,
        ip_country=None,
        eccn=Eccn.AI_MODEL_WEIGHTS,
        on=date(2026, 3, 1),
        screening_hits=(hit,),
    )
    decision = decide(request, load_pack("ai-diffusion-2025"))
    assert decision.effect == "deny" and decision.tier == 1
    [reason] = [r for r in decision.reasons if r.code == "DENIED_PARTY_MATCH"]
    assert "SYN-SDN-0002" in reason.message
    assert "Specially Designated Nationals" in reason.citation
    assert decision.to_dict()["screening"][0]["entry_id"] == "SYN-SDN-0002"


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        ("name,source\nX,Y\n", ".csv", "missing CSL columns"),
        ("_id,source,name\nA-1,EL,\n", ".csv", "line 2"),
        ('{"results": [{"id": "A", "source": "EL"}]}', ".json", "has no name"),
        ("{not json", ".json", "screening list"),
    ],
    ids=["missing-columns", "entry-without-name", "json-entry-without-name", "bad-json"],
)
def test_malformed_list_is_refused_at_load(
    tmp_path: Path, content: str, suffix: str, message: str
) -> None:
    path = tmp_path / f"list{suffix}"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InvalidInput, match=message):
        load_screening_list(path)


def test_missing_list_and_silly_threshold_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read"):
        load_screening_list(tmp_path / "absent.csv")
    with pytest.raises(InvalidInput, match="threshold"):
        load_screening_list(FIXTURES / "csl-synthetic.csv", threshold=10)


def _listed(*names: str) -> ScreeningList:
    parties = [ListedParty(f"P-{i}", "EL", name, ()) for i, name in enumerate(names)]
    return ScreeningList(parties, sha256="0" * 64, threshold=90)


def test_a_short_listed_alias_inside_a_longer_word_is_not_a_hit() -> None:
    screening = ScreeningList(
        [ListedParty("P-1", "EL", "Bereznik Electronics", ("BE", "NC"))],
        sha256="0" * 64,
        threshold=90,
    )
    assert screening.screen(["Bench"]) == []
    assert screening.screen(["Benchmark Instruments GmbH", "Syncro"]) == []


@pytest.mark.parametrize("name", ["BE Holdings", "be holdings ltd", "Holdings, B.E."])
def test_a_short_listed_alias_still_hits_as_a_whole_word(name: str) -> None:
    [hit] = _listed("BE").screen([name])
    assert (hit.entry_id, hit.listed_name, hit.score) == ("P-0", "BE", 90)


def test_a_short_organisation_alias_inside_a_longer_listed_word_is_not_a_hit() -> None:
    screening = _listed("Abacus Trading", "AB Trading")
    assert [hit.entry_id for hit in screening.screen(["AB"])] == ["P-1"]
    assert [hit.entry_id for hit in screening.screen(["A.B."])] == ["P-1"]


def test_short_names_match_each_other_only_when_equal() -> None:
    screening = _listed("ZTE", "ZTEC")
    assert [hit.entry_id for hit in screening.screen(["Z.T.E."])] == ["P-0"]
    assert screening.screen(["ZTB"]) == []


def test_short_names_in_ideographs_keep_matching_inside_longer_names() -> None:
    # Chinese is written without spaces: a two-character listed name is a
    # whole name, and is routinely part of the longer registered one.
    [hit] = _listed("华为").screen(["华为技术有限公司"])
    assert hit.entry_id == "P-0"
