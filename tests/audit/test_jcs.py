"""Entries are RFC 8785 (JCS) canonical JSON: an independent implementation gives the same bytes.

``rfc8785`` (a test-only dependency) is not ours and shares no code with
``gateway.canonical``; where the two agree on every entry the gateway can
produce, a verifier may re-canonicalise an entry with any JCS library and get
the bytes that were hashed.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, datetime
from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.events import EVENTS, RequestContext, build_event
from gateway.audit.merkle import leaf_hash
from gateway.bootstrap import Services
from gateway.canonical import canonical_json
from tests.audit.support import fill

# JCS numbers are IEEE 754 doubles: integers beyond 2**53 have no exact form,
# and the gateway writes none (sizes, indices, tiers and counts are far below).
SAFE_INTEGERS = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
# Every key the gateway writes is an ASCII field name chosen in code.
FIELD_NAMES = st.text(alphabet=string.ascii_letters + string.digits + "_", min_size=1, max_size=12)
# Any Unicode scalar value: control characters, U+2028, astral planes (no lone surrogates,
# which are not text and which neither encoder accepts).
TEXT = st.text(max_size=40)
VALUES = st.recursive(
    st.none() | st.booleans() | SAFE_INTEGERS | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELD_NAMES, inner, max_size=4),
    max_leaves=20,
)


@st.composite
def entries(draw: st.DrawFn) -> dict[str, Any]:
    """An entry as the sequencer hashes it: a registered event, built as the gateway builds it."""
    kind = EVENTS[draw(st.sampled_from(sorted(EVENTS)))]
    fields: dict[str, Any] = {
        name: draw(VALUES.filter(lambda v: v is not None)) for name in kind.required
    }
    fields |= {name: draw(VALUES) for name in kind.optional if draw(st.booleans())}
    event = build_event(
        kind.name,
        time=datetime.fromtimestamp(draw(st.integers(0, 2**33)), tz=UTC),
        context=RequestContext(request_id=draw(TEXT), client_address=draw(st.none() | TEXT)),
        actor={"subject": draw(TEXT), "org": draw(st.none() | TEXT)},
        **fields,
    )
    return {**event, "index": draw(st.integers(0, 2**53 - 1)), "origin": draw(TEXT)}


@settings(max_examples=500, deadline=None)
@given(entries())
def test_every_entry_we_can_produce_is_jcs(entry: dict[str, Any]) -> None:
    assert canonical_json(entry) == rfc8785.dumps(entry)


def test_every_leaf_of_a_real_log_is_reproduced_by_jcs(catalog_ready: Services) -> None:
    services = catalog_ready  # organisations and a published model, then denials
    fill(services)
    for stored in services.audit.entries():
        reparsed = json.loads(stored.entry)
        assert rfc8785.dumps(reparsed) == stored.entry
        assert leaf_hash(rfc8785.dumps(reparsed)) == stored.leaf_hash
