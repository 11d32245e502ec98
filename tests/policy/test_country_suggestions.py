"""A mistyped country gets the code it most likely meant, and never stands in for one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import InvalidInput
from gateway.policy.countries import country_code, iso_countries, suggest_country


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("germany", "DE"),
        ("Germany", "DE"),
        ("germny", "DE"),
        ("south korea", "KR"),
        ("North Korea", "KP"),
        ("turkiye", "TR"),
        ("Cote dIvoire", "CI"),
        ("china", "CN"),
        ("united states", "US"),
    ],
)
def test_a_country_name_or_a_near_miss_suggests_its_code(typed: str, code: str) -> None:
    assert suggest_country(typed) == code


@pytest.mark.parametrize("typed", ["xx", "", "   ", "zzzzzzzzzzz", "g" * 10_000])
def test_nothing_like_a_country_suggests_nothing(typed: str) -> None:
    assert suggest_country(typed) is None


def test_a_name_is_suggested_in_the_error_but_never_accepted_as_the_code() -> None:
    with pytest.raises(InvalidInput, match=r"did you mean DE \(Germany\)\?"):
        country_code("germany", what="--country")


@given(st.text(max_size=80))
def test_any_suggestion_is_an_assigned_code(typed: str) -> None:
    suggestion = suggest_country(typed)
    assert suggestion is None or suggestion in iso_countries()
