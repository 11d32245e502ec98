"""Canonical JSON: the bytes that are hashed and bound into AEADs never admit a float."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.canonical import canonical_json

_leaves = st.none() | st.booleans() | st.integers() | st.text()
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_values)
def test_canonical_json_is_sorted_compact_utf8(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == expected.encode()


@given(_values, st.floats(allow_nan=False), st.data())
def test_a_float_anywhere_is_refused(value: Any, number: float, data: st.DataObject) -> None:
    # Bury the float at a random depth inside the value.
    container: Any = [value, number] if data.draw(st.booleans()) else {"k": value, "f": number}
    for _ in range(data.draw(st.integers(0, 3))):
        container = {"nested": [container]}
    with pytest.raises(TypeError, match="float"):
        canonical_json(container)


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError, match="keys"):
        canonical_json({"ok": {1: "no"}})
