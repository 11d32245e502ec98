"""Canonical JSON: the byte form that gets hashed, signed or bound into crypto.

Sorted keys, no insignificant whitespace, UTF-8, and no floats: a float has
more than one textual form, so it would make the same value hash differently.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring
from typing import Any

_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
# The leaves canonical JSON allows; checked by exact type first because a grant
# binds several of these per file, and the common case should cost a lookup.
_PLAIN_LEAVES = frozenset({str, int, bool, type(None)})


def _reject_floats(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind in _PLAIN_LEAVES:
            continue
        if isinstance(item, float):
            raise TypeError("floats are not allowed in canonical JSON")
        if isinstance(item, dict):
            if not all(type(key) is str for key in item):
                raise TypeError("canonical JSON keys must be strings")
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)


def canonical_json(value: Any) -> bytes:
    _reject_floats(value)
    return _ENCODER.encode(value).encode()


def json_string(value: str) -> str:
    """``value`` as canonical JSON writes a string: for objects built by hand on hot paths."""
    return encode_basestring(value)
