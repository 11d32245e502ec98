"""RFC 6962 Merkle tree hashing against published vectors and an independent implementation.

The published roots come from the Certificate Transparency reference tests (see
``tests/vectors/rfc6962-ct-roots.json`` for where each value comes from). Every
other size is checked against ``reference_mth`` below: a deliberately naive,
recursive transcription of RFC 6962 section 2.1 that shares no code with
``gateway.audit.merkle``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.merkle import EMPTY_ROOT, HASH_SIZE, CompactRange, leaf_hash, node_hash, root_of

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "rfc6962-ct-roots.json"
LARGEST = 300


def reference_mth(data: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 section 2.1 writes it."""
    n = len(data)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1 << ((n - 1).bit_length() - 1)  # the largest power of two smaller than n
    return hashlib.sha256(b"\x01" + reference_mth(data[:k]) + reference_mth(data[k:])).digest()


def _ct_vectors() -> tuple[list[bytes], dict[int, bytes]]:
    raw = json.loads(VECTORS.read_text(encoding="utf-8"))
    leaves = [bytes.fromhex(leaf) for leaf in raw["leaves_hex"]]
    roots = {int(size): bytes.fromhex(root) for size, root in raw["roots_hex"].items()}
    return leaves, roots


CT_LEAVES, CT_ROOTS = _ct_vectors()
# A fixed, varied input for the exhaustive sweep over sizes: lengths 0..40 bytes.
SWEEP_LEAVES = [hashlib.sha256(str(i).encode()).digest()[: i % 41] for i in range(LARGEST + 1)]


def _grown(leaves: Sequence[bytes]) -> CompactRange:
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf_hash(leaf))
    return tree


def test_vector_file_holds_all_sizes_up_to_eight() -> None:
    assert len(CT_LEAVES) == 8
    assert sorted(CT_ROOTS) == list(range(9))


@pytest.mark.parametrize("size", range(9))
def test_root_matches_published_ct_root(size: int) -> None:
    assert root_of(CT_LEAVES[:size]) == CT_ROOTS[size]
    assert _grown(CT_LEAVES[:size]).root() == CT_ROOTS[size]


@pytest.mark.parametrize("size", range(9))
def test_independent_reference_reproduces_published_ct_root(size: int) -> None:
    # Guards the guard: the reference used below for every other size is right.
    assert reference_mth(CT_LEAVES[:size]) == CT_ROOTS[size]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert CompactRange().root() == EMPTY_ROOT
    assert root_of([]) == EMPTY_ROOT


def test_leaf_and_node_prefixes_separate_domains() -> None:
    # Without the 0x00 / 0x01 prefixes an interior node could be presented as a
    # leaf whose data is the two child hashes (a second preimage of the root).
    left, right = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(b"") == CT_ROOTS[1]
    assert leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
    assert node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert leaf_hash(left + right) != node_hash(left, right)
    assert root_of([left + right]) != root_of([b"a", b"b"])


def test_unbalanced_tree_is_not_padded_like_bitcoin() -> None:
    # Bitcoin duplicates the last node; RFC 6962 promotes it. The two schemes
    # disagree at size 3, and a duplicated entry must not leave the root alone.
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert root_of([b"a", b"b", b"c"]) == node_hash(node_hash(a, b), c)
    assert root_of([b"a", b"b", b"c"]) != root_of([b"a", b"b", b"c", b"c"])


def test_every_size_up_to_a_few_hundred_matches_the_reference() -> None:
    tree = CompactRange()
    assert tree.root() == reference_mth([])
    for size in range(1, LARGEST + 1):
        tree.append(leaf_hash(SWEEP_LEAVES[size - 1]))
        assert tree.size == size
        assert tree.root() == reference_mth(SWEEP_LEAVES[:size]), size


def test_frontier_round_trips_at_every_size() -> None:
    tree = CompactRange()
    for size in range(LARGEST + 1):
        packed = tree.to_bytes()
        assert len(packed) == size.bit_count() * HASH_SIZE
        restored = CompactRange.from_bytes(size, packed)
        assert restored.size == size
        assert restored.to_bytes() == packed
        assert restored.root() == tree.root()
        tree.append(leaf_hash(SWEEP_LEAVES[size]))


@settings(max_examples=60, deadline=None, database=None)
@given(leaves=st.lists(st.binary(max_size=48), max_size=LARGEST))
def test_random_logs_match_the_reference(leaves: list[bytes]) -> None:
    tree = CompactRange()
    for leaf in leaves:
        restored = CompactRange.from_bytes(tree.size, tree.to_bytes())
        assert restored.root() == tree.root()
        tree.append(leaf_hash(leaf))
    assert tree.size == len(leaves)
    assert tree.root() == reference_mth(leaves)
    assert root_of(leaves) == reference_mth(leaves)


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data(), leaves=st.lists(st.binary(max_size=16), max_size=LARGEST))
def test_frontier_stored_mid_log_continues_to_the_same_root(
    data: st.DataObject, leaves: list[bytes]
) -> None:
    # The audit log persists the frontier after every batch and resumes from
    # it; resuming at any point must land on the root of the whole sequence.
    cut = data.draw(st.integers(min_value=0, max_value=len(leaves)), label="cut")
    stored = _grown(leaves[:cut])
    resumed = CompactRange.from_bytes(cut, stored.to_bytes())
    for leaf in leaves[cut:]:
        resumed.append(leaf_hash(leaf))
    assert resumed.root() == reference_mth(leaves)


@settings(max_examples=200, deadline=None, database=None)
@given(size=st.integers(min_value=0, max_value=2**63), count=st.integers(0, 64))
def test_frontier_with_the_wrong_number_of_hashes_is_refused(size: int, count: int) -> None:
    hashes = [bytes([i]) * HASH_SIZE for i in range(count)]
    if count == size.bit_count():
        assert CompactRange(size, hashes).size == size
    else:
        with pytest.raises(ValueError, match="does not match"):
            CompactRange(size, hashes)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 255, 256, 300])
def test_frontier_with_a_hash_missing_is_refused(size: int) -> None:
    packed = _grown(SWEEP_LEAVES[:size]).to_bytes()
    with pytest.raises(ValueError, match="does not match"):
        CompactRange.from_bytes(size, packed[:-HASH_SIZE])
    with pytest.raises(ValueError, match="does not match"):
        CompactRange.from_bytes(size, packed + bytes(HASH_SIZE))


@pytest.mark.parametrize("size", [1, 3, 7, 300])
@pytest.mark.parametrize("damage", ["truncated by one byte", "one byte too long"])
def test_frontier_damaged_in_storage_is_refused(size: int, damage: str) -> None:
    # The frontier is read back from the tree_state row on every append. A value
    # cut short (or padded) by a faulty write or a tamperer must not be silently
    # regrouped into hashes of the wrong length, or the gateway would sign a
    # checkpoint over a root that no sequence of entries has.
    packed = _grown(SWEEP_LEAVES[:size]).to_bytes()
    damaged = packed[:-1] if damage == "truncated by one byte" else packed + b"\x00"
    with pytest.raises(ValueError):
        CompactRange.from_bytes(size, damaged)


def test_negative_size_is_refused() -> None:
    # int.bit_count() counts the bits of |n|, so -1 "has" one subtree.
    with pytest.raises(ValueError):
        CompactRange(-1, [bytes(HASH_SIZE)])
