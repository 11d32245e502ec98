"""``gc.plan`` is pure: properties over any mix of listed blobs and references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway import gc
from gateway.storage.interfaces import ListedBlob

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_hex = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
_keys = st.one_of(_hex.map(lambda h: f"objects/{h}"), st.sampled_from(["anchors/1", "objects/x"]))
_blobs = st.builds(
    ListedBlob,
    key=_keys,
    version=st.sampled_from(["v1", "v2", "v3"]),
    size=st.integers(0, 1 << 40),
    modified=st.integers(0, 72 * 3600).map(lambda s: NOW - timedelta(seconds=s)),
    complete=st.booleans(),
)


@given(
    listed=st.lists(_blobs, max_size=40),
    referenced_share=st.integers(0, 40),
    grace_hours=st.integers(0, 48),
)
def test_plan_never_offers_a_referenced_young_or_foreign_blob(
    listed: list[ListedBlob], referenced_share: int, grace_hours: int
) -> None:
    referenced = {(b.key, b.version) for b in listed[:referenced_share] if b.complete}
    grace = timedelta(hours=grace_hours)
    found = gc.plan(listed, referenced, now=NOW, grace=grace)
    for blob in found.deletable:
        assert not (blob.complete and (blob.key, blob.version) in referenced)
        assert NOW - blob.modified >= grace
        assert blob.key.startswith("objects/") and len(blob.key) == len("objects/") + 32
    # Every unreferenced blob of publish's shape is offered or held back, none lost.
    ours = [
        b
        for b in listed
        if len(b.key) == 40 and not (b.complete and (b.key, b.version) in referenced)
    ]
    assert len(found.deletable) + len(found.too_young) == len(ours)
    assert found.deletable_bytes == sum(b.size for b in found.deletable)
