"""RFC 9162 inclusion and consistency proofs from stored perfect subtrees.

Three sources of truth are held against ``gateway.audit.proofs``:

* the published Certificate Transparency proof vectors
  (``tests/vectors/rfc6962-ct-proofs.json``, provenance inside);
* ``Reference`` below, a naive transcription of the recursive PATH and
  SUBPROOF definitions of RFC 9162 sections 2.1.3.1 and 2.1.4.1 that hashes
  with hashlib directly and shares no code with the gateway;
* a node store built here level by level, the way the database holds it.

The attack probes follow transparency-dev/merkle ``proof/verify_test.go``
(``corruptInclusionProof`` / ``corruptConsistencyProof``): a log that could
pass off a proof for another index, another size, another root or a doctored
path could hide or rewrite a grant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import proofs
from gateway.audit.merkle import EMPTY_ROOT, CompactRange, leaf_hash
from gateway.audit.proofs import NodeId
from gateway.errors import IntegrityError, InvalidInput

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
PROOF_VECTORS: dict[str, Any] = json.loads(
    (VECTORS / "rfc6962-ct-proofs.json").read_text(encoding="utf-8")
)
ROOT_VECTORS: dict[str, Any] = json.loads(
    (VECTORS / "rfc6962-ct-roots.json").read_text(encoding="utf-8")
)
CT_LEAVES = [bytes.fromhex(leaf) for leaf in ROOT_VECTORS["leaves_hex"]]
CT_ROOTS = {int(size): bytes.fromhex(root) for size, root in ROOT_VECTORS["roots_hex"].items()}

EXHAUSTIVE = 64  # every size, index, size pair and attack probe
SWEEP = 300  # every size, index and size pair, honest proofs only
LARGE = 5000  # hypothesis samples sizes up to here
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class Reference:
    """RFC 9162 PATH and SUBPROOF, word for word, over D[lo:hi] of fixed leaf hashes.

    MTH is memoised by range only so the sweep stays fast; the recursion is
    still the RFC's, not the gateway's iteration over stored nodes.
    """

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self.leaves = list(leaf_hashes)
        self._mth: dict[tuple[int, int], bytes] = {}

    @staticmethod
    def _k(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    def mth(self, lo: int, hi: int) -> bytes:
        if (lo, hi) not in self._mth:
            n = hi - lo
            if n == 0:
                digest = hashlib.sha256(b"").digest()
            elif n == 1:
                digest = self.leaves[lo]
            else:
                k = self._k(n)
                digest = _node(self.mth(lo, lo + k), self.mth(lo + k, hi))
            self._mth[lo, hi] = digest
        return self._mth[lo, hi]

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = self._k(n)
        if m < k:
            return [*self.path(m, lo, lo + k), self.mth(lo + k, hi)]
        return [*self.path(m - k, lo + k, hi), self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = self._k(n)
        if m <= k:
            return [*self.subproof(m, lo, lo + k, b), self.mth(lo + k, hi)]
        return [*self.subproof(m - k, lo + k, hi, False), self.mth(lo, lo + k)]

    @classmethod
    def path_shape(cls, m: int, n: int) -> tuple[str, ...]:
        """Which side each PATH element sits on, leaf first: all a verifier can see of (m, n)."""
        if n <= 1:
            return ()
        k = cls._k(n)
        if m < k:
            return (*cls.path_shape(m, k), "right")
        return (*cls.path_shape(m - k, n - k), "left")

    @classmethod
    def subproof_shape(cls, m: int, n: int, b: bool = True) -> tuple[str, ...]:
        """The SUBPROOF recursion's choices, first element first."""
        if m == n:
            return () if b else ("old subtree",)
        k = cls._k(n)
        if m <= k:
            return (*cls.subproof_shape(m, k, b), "right")
        return (*cls.subproof_shape(m - k, n - k, False), "left")

    def inclusion(self, index: int, size: int) -> list[bytes]:
        return self.path(index, 0, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        return self.subproof(old, 0, new, True)


def build_store(leaf_hashes: Sequence[bytes]) -> dict[NodeId, bytes]:
    """Every perfect subtree, as the database stores them: level 0 leaves, then pairs."""
    store = {(0, i): h for i, h in enumerate(leaf_hashes)}
    level, width = 0, len(leaf_hashes)
    while width > 1:
        for i in range(width // 2):
            store[level + 1, i] = _node(store[level, 2 * i], store[level, 2 * i + 1])
        level, width = level + 1, width // 2
    return store


class Recorder:
    """A NodeReader that remembers what it was asked for."""

    def __init__(self, store: dict[NodeId, bytes]) -> None:
        self.store = store
        self.calls: list[NodeId] = []

    def __call__(self, node: NodeId) -> bytes:
        self.calls.append(node)
        return self.store[node]


def _leaves(count: int, salt: bytes = b"") -> list[bytes]:
    return [_leaf(salt + i.to_bytes(4, "big")) for i in range(count)]


SWEEP_LEAVES = _leaves(LARGE)
SWEEP_STORE = build_store(SWEEP_LEAVES)
SWEEP_REF = Reference(SWEEP_LEAVES)
CT_LEAF_HASHES = [_leaf(leaf) for leaf in CT_LEAVES]
CT_STORE = build_store(CT_LEAF_HASHES)


def _complete(node: NodeId, size: int) -> bool:
    level, index = node
    return level >= 0 and index >= 0 and (index + 1) << level <= size


def _flip(proof: Sequence[bytes], element: int, bit: int) -> list[bytes]:
    doctored = [bytearray(h) for h in proof]
    doctored[element][bit // 8] ^= 1 << (bit % 8)
    return [bytes(h) for h in doctored]


def _inclusion_refused(leaf: bytes, index: int, size: int, proof: list[bytes], root: bytes) -> bool:
    try:
        proofs.verify_inclusion(leaf, index, size, proof, root)
    except IntegrityError:
        return True
    return False


def _consistency_refused(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    try:
        proofs.verify_consistency(old, new, old_root, new_root, proof)
    except IntegrityError:
        return True
    return False


# Published vectors --------------------------------------------------------------


def test_vector_leaves_and_roots_agree_with_the_reference() -> None:
    ref = Reference(CT_LEAF_HASHES)
    for size, root in CT_ROOTS.items():
        assert ref.mth(0, size) == root
        assert proofs.root_from_nodes(CT_STORE.__getitem__, size) == root


@pytest.mark.parametrize(
    "vector", PROOF_VECTORS["inclusion"], ids=lambda v: f"leaf{v['index']}-of-{v['size']}"
)
def test_published_inclusion_proof(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    published = [bytes.fromhex(h) for h in vector["path_hex"]]

    assert proofs.inclusion_proof(CT_STORE.__getitem__, index, size) == published
    assert Reference(CT_LEAF_HASHES).inclusion(index, size) == published
    proofs.verify_inclusion(CT_LEAF_HASHES[index], index, size, published, CT_ROOTS[size])


@pytest.mark.parametrize(
    "vector",
    PROOF_VECTORS["consistency"],
    ids=lambda v: f"{v['old_size']}-to-{v['new_size']}",
)
def test_published_consistency_proof(vector: dict[str, Any]) -> None:
    old, new = vector["old_size"], vector["new_size"]
    published = [bytes.fromhex(h) for h in vector["path_hex"]]

    assert proofs.consistency_proof(CT_STORE.__getitem__, old, new) == published
    assert Reference(CT_LEAF_HASHES).consistency(old, new) == published
    proofs.verify_consistency(old, new, CT_ROOTS[old], CT_ROOTS[new], published)


@pytest.mark.parametrize("vector", PROOF_VECTORS["inclusion"][1:], ids=lambda v: str(v["index"]))
def test_every_single_bit_of_a_published_inclusion_path_matters(vector: dict[str, Any]) -> None:
    index, size = vector["index"], vector["size"]
    published = [bytes.fromhex(h) for h in vector["path_hex"]]
    for element in range(len(published)):
        for bit in range(256):
            with pytest.raises(IntegrityError):
                proofs.verify_inclusion(
                    CT_LEAF_HASHES[index],
                    index,
                    size,
                    _flip(published, element, bit),
                    CT_ROOTS[size],
                )


@pytest.mark.parametrize(
    "vector", PROOF_VECTORS["consistency"][1:], ids=lambda v: f"{v['old_size']}-{v['new_size']}"
)
def test_every_single_bit_of_a_published_consistency_path_matters(
    vector: dict[str, Any],
) -> None:
    old, new = vector["old_size"], vector["new_size"]
    published = [bytes.fromhex(h) for h in vector["path_hex"]]
    for element in range(len(published)):
        for bit in range(256):
            with pytest.raises(IntegrityError):
                proofs.verify_consistency(
                    old, new, CT_ROOTS[old], CT_ROOTS[new], _flip(published, element, bit)
                )


# Honest proofs at every size ------------------------------------------------------


def test_every_inclusion_proof_up_to_a_few_hundred_leaves() -> None:
    for size in range(1, SWEEP + 1):
        root = SWEEP_REF.mth(0, size)
        for index in range(size):
            reader = Recorder(SWEEP_STORE)
            proof = proofs.inclusion_proof(reader, index, size)
            assert proof == SWEEP_REF.inclusion(index, size), (index, size)
            proofs.verify_inclusion(SWEEP_LEAVES[index], index, size, proof, root)
            nodes = proofs.inclusion_nodes(index, size)
            assert sorted(reader.calls) == sorted(nodes), (index, size)


def test_every_consistency_proof_up_to_a_few_hundred_leaves() -> None:
    for new in range(SWEEP + 1):
        new_root = SWEEP_REF.mth(0, new)
        for old in range(new + 1):
            reader = Recorder(SWEEP_STORE)
            proof = proofs.consistency_proof(reader, old, new)
            expected = SWEEP_REF.consistency(old, new) if old else []
            assert proof == expected, (old, new)
            proofs.verify_consistency(old, new, SWEEP_REF.mth(0, old), new_root, proof)
            assert sorted(reader.calls) == sorted(proofs.consistency_nodes(old, new)), (old, new)


def test_root_from_nodes_is_the_compact_range_root_at_every_size() -> None:
    tree = CompactRange()
    for size in range(SWEEP + 1):
        reader = Recorder(SWEEP_STORE)
        assert proofs.root_from_nodes(reader, size) == tree.root() == SWEEP_REF.mth(0, size)
        assert sorted(reader.calls) == sorted(proofs.subtree_nodes(0, size))
        tree.append(SWEEP_LEAVES[size])


@settings(max_examples=150, deadline=None, database=None)
@given(data=st.data(), size=st.integers(min_value=1, max_value=LARGE))
def test_proofs_in_larger_logs(data: st.DataObject, size: int) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=1, max_value=size), label="old")
    root = SWEEP_REF.mth(0, size)

    inclusion = proofs.inclusion_proof(SWEEP_STORE.__getitem__, index, size)
    assert inclusion == SWEEP_REF.inclusion(index, size)
    proofs.verify_inclusion(SWEEP_LEAVES[index], index, size, inclusion, root)

    consistency = proofs.consistency_proof(SWEEP_STORE.__getitem__, old, size)
    assert consistency == SWEEP_REF.consistency(old, size)
    proofs.verify_consistency(old, size, SWEEP_REF.mth(0, old), root, consistency)


@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data(), leaves=st.lists(st.binary(max_size=24), min_size=1, max_size=200))
def test_proofs_over_random_entries(data: st.DataObject, leaves: list[bytes]) -> None:
    hashes = [leaf_hash(entry) for entry in leaves]
    store, ref, size = build_store(hashes), Reference(hashes), len(hashes)
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    old = data.draw(st.integers(min_value=0, max_value=size), label="old")

    inclusion = proofs.inclusion_proof(store.__getitem__, index, size)
    assert inclusion == ref.inclusion(index, size)
    proofs.verify_inclusion(hashes[index], index, size, inclusion, ref.mth(0, size))
    consistency = proofs.consistency_proof(store.__getitem__, old, size)
    proofs.verify_consistency(old, size, ref.mth(0, old), ref.mth(0, size), consistency)


# What a database query must fetch --------------------------------------------------


def test_node_lists_name_only_complete_nodes_once_each_and_stay_logarithmic() -> None:
    # A node that is not complete at the requested size does not exist yet
    # (or, read from a bigger tree, would prove the wrong thing).
    for new in range(1, SWEEP + 1):
        bound = 2 * new.bit_length()
        for index in range(new):
            nodes = proofs.inclusion_nodes(index, new)
            assert all(_complete(n, new) for n in nodes)
            assert len(set(nodes)) == len(nodes) <= bound
        for old in range(new + 1):
            nodes = proofs.consistency_nodes(old, new)
            assert all(_complete(n, new) for n in nodes)
            assert len(set(nodes)) == len(nodes) <= bound


@pytest.mark.parametrize("size", [2**40 + 3, 2**63 - 1, 2**64 - 1])
def test_node_lists_stay_logarithmic_at_any_size(size: int) -> None:
    for index in (0, 1, size // 3, size - 2, size - 1):
        nodes = proofs.inclusion_nodes(index, size)
        assert all(_complete(n, size) for n in nodes)
        assert len(nodes) <= 2 * size.bit_length()
    for old in (1, 2, 3, size // 3, size - 1, size):
        nodes = proofs.consistency_nodes(old, size)
        assert all(_complete(n, size) for n in nodes)
        assert len(nodes) <= 2 * size.bit_length()


def test_a_damaged_stored_node_is_named_not_folded_in() -> None:
    store = dict(CT_STORE)
    store[1, 3] = store[1, 3][:31]
    with pytest.raises(IntegrityError, match=r"\(1, 3\)"):
        proofs.inclusion_proof(store.__getitem__, 5, 8)


def test_subtree_hash_refuses_ranges_not_made_of_stored_nodes() -> None:
    # [1, 3) is MTH of two leaves that never share a stored parent.
    with pytest.raises(InvalidInput):
        proofs.subtree_hash(CT_STORE.__getitem__, 1, 3)
    with pytest.raises(InvalidInput):
        proofs.subtree_hash(CT_STORE.__getitem__, 4, 2)
    assert proofs.subtree_hash(CT_STORE.__getitem__, 4, 4) == EMPTY_ROOT
    assert proofs.subtree_hash(CT_STORE.__getitem__, 4, 7) == Reference(CT_LEAF_HASHES).mth(4, 7)


# Attacks on inclusion proofs --------------------------------------------------------


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, int, int, list[bytes], bytes, bytes]]:
    probes = [
        ("index - 1", index - 1, size, proof, root, leaf),
        ("index + 1", index + 1, size, proof, root, leaf),
        ("index ^ 2", index ^ 2, size, proof, root, leaf),
        ("size * 2", index, size * 2, proof, root, leaf),
        ("size // 2", index, size // 2, proof, root, leaf),
        ("size + 1", index, size + 1, proof, root, leaf),
        ("size - 1", index, size - 1, proof, root, leaf),
        ("wrong leaf", index, size, proof, root, _leaf(b"WrongLeaf")),
        ("entry instead of leaf hash", index, size, proof, root, b"WrongLeaf"),
        ("empty-tree root", index, size, proof, EMPTY_ROOT, leaf),
        ("random root", index, size, proof, SOME_HASH, leaf),
        ("trailing garbage", index, size, [*proof, b""], root, leaf),
        ("trailing root", index, size, [*proof, root], root, leaf),
        ("preceding garbage", index, size, [b"", *proof], root, leaf),
        ("preceding root", index, size, [root, *proof], root, leaf),
    ]
    if proof:
        probes.append(("truncated", index, size, proof[:-1], root, leaf))
        probes.append(("first element dropped", index, size, proof[1:], root, leaf))
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        probes.append(("inserted element", index, size, inserted, root, leaf))
        probes.append(
            ("swapped elements", index, size, [proof[1], proof[0], *proof[2:]], root, leaf)
        )
    for element in range(len(proof)):
        bit = (index * 31 + size * 7 + element * 13) % 256  # walks over every bit position
        probes.append(
            (f"bit {bit} of proof[{element}]", index, size, _flip(proof, element, bit), root, leaf)
        )
    return probes


def _same_inclusion_shape(index: int, size: int, i: int, n: int) -> bool:
    return 0 <= i < n and Reference.path_shape(i, n) == Reference.path_shape(index, size)


def test_inclusion_proof_for_another_index_size_leaf_or_root_is_refused() -> None:
    # A proof fixes the *shape* of the path (which side each sibling is on),
    # not the size itself: leaf 0 of 3 and leaf 0 of 4 both hash "right,
    # right", so one proof and one root pass for both. That is RFC 9162's
    # design and harmless, because size and root only ever arrive together in
    # one signed checkpoint. Every probe with another shape must fail, and the
    # test is exact: a same-shape probe that failed would also be a bug.
    for size in range(1, EXHAUSTIVE + 1):
        root = SWEEP_REF.mth(0, size)
        for index in range(size):
            proof = SWEEP_REF.inclusion(index, size)
            leaf = SWEEP_LEAVES[index]
            for desc, i, n, p, r, lf in _inclusion_probes(index, size, proof, root, leaf):
                refused = _inclusion_refused(lf, i, n, p, r)
                same_shape = (i, n) != (index, size) and _same_inclusion_shape(index, size, i, n)
                assert refused != same_shape, (desc, index, size)


def test_the_same_path_shape_at_another_size_is_only_accepted_with_the_same_root() -> None:
    proof = SWEEP_REF.inclusion(0, 3)
    proofs.verify_inclusion(SWEEP_LEAVES[0], 0, 4, proof, SWEEP_REF.mth(0, 3))
    with pytest.raises(IntegrityError):
        proofs.verify_inclusion(SWEEP_LEAVES[0], 0, 4, proof, SWEEP_REF.mth(0, 4))


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), size=st.integers(min_value=2, max_value=LARGE))
def test_any_single_bit_flip_in_an_inclusion_proof_is_caught(
    data: st.DataObject, size: int
) -> None:
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    proof = SWEEP_REF.inclusion(index, size)
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    with pytest.raises(IntegrityError):
        proofs.verify_inclusion(
            SWEEP_LEAVES[index], index, size, _flip(proof, element, bit), SWEEP_REF.mth(0, size)
        )


@pytest.mark.parametrize(
    ("index", "size"), [(0, 0), (1, 0), (1, 1), (2, 1), (-1, 4), (4, 4), (0, -1)]
)
def test_inclusion_of_a_leaf_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(InvalidInput):
        proofs.inclusion_proof(SWEEP_STORE.__getitem__, index, size)
    with pytest.raises(InvalidInput):
        proofs.inclusion_nodes(index, size)
    with pytest.raises(IntegrityError):
        proofs.verify_inclusion(SOME_HASH, index, size, [], SOME_HASH)


def test_single_leaf_tree_root_is_the_leaf_and_the_proof_is_empty() -> None:
    leaf = _leaf(b"data")
    proofs.verify_inclusion(leaf, 0, 1, [], leaf)
    assert proofs.inclusion_proof({(0, 0): leaf}.__getitem__, 0, 1) == []
    assert proofs.inclusion_nodes(0, 1) == []
    with pytest.raises(IntegrityError):
        proofs.verify_inclusion(leaf, 0, 1, [], b"")
    with pytest.raises(IntegrityError):
        proofs.verify_inclusion(b"", 0, 1, [], leaf)


# Attacks on consistency proofs ---------------------------------------------------------


def _consistency_probes(
    old: int, new: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> list[tuple[str, int, int, bytes, bytes, list[bytes]]]:
    probes = [
        ("old - 1", old - 1, new, old_root, new_root, proof),
        ("old + 1", old + 1, new, old_root, new_root, proof),
        ("old ^ 2", old ^ 2, new, old_root, new_root, proof),
        ("new * 2", old, new * 2, old_root, new_root, proof),
        ("new // 2", old, new // 2, old_root, new_root, proof),
        ("new + 1", old, new + 1, old_root, new_root, proof),
        ("new - 1", old, new - 1, old_root, new_root, proof),
        ("wrong old root", old, new, SOME_HASH, new_root, proof),
        ("wrong new root", old, new, old_root, SOME_HASH, proof),
        ("swapped roots", old, new, new_root, old_root, proof),
        ("empty proof", old, new, old_root, new_root, []),
        ("trailing garbage", old, new, old_root, new_root, [*proof, b""]),
        ("trailing old root", old, new, old_root, new_root, [*proof, old_root]),
        ("trailing new root", old, new, old_root, new_root, [*proof, new_root]),
        ("preceding garbage", old, new, old_root, new_root, [b"", *proof]),
        ("preceding old root", old, new, old_root, new_root, [old_root, *proof]),
        ("preceding new root", old, new, old_root, new_root, [new_root, *proof]),
        ("preceding proof[0]", old, new, old_root, new_root, [proof[0], *proof]),
        ("truncated", old, new, old_root, new_root, proof[:-1]),
    ]
    if len(proof) > 1:
        probes.append(
            ("swapped elements", old, new, old_root, new_root, [proof[1], proof[0], *proof[2:]])
        )
    for element in range(len(proof)):
        bit = (old * 31 + new * 7 + element * 13) % 256
        probes.append(
            (
                f"bit {bit} of proof[{element}]",
                old,
                new,
                old_root,
                new_root,
                _flip(proof, element, bit),
            )
        )
    return probes


def _same_consistency_shape(old: int, new: int, m: int, n: int) -> bool:
    if (m, n) == (old, new) or not 0 < m < n:
        return False
    return Reference.subproof_shape(m, n) == Reference.subproof_shape(old, new)


def test_consistency_proof_for_other_sizes_roots_or_a_doctored_path_is_refused() -> None:
    # As for inclusion, sizes with the same SUBPROOF shape (1 to 3 and 1 to 4
    # are both "right, right") accept one proof for the same roots; the
    # roots, not the sizes, are what a checkpoint signs together with them.
    for new in range(2, EXHAUSTIVE + 1):
        new_root = SWEEP_REF.mth(0, new)
        for old in range(1, new):
            proof = SWEEP_REF.consistency(old, new)
            old_root = SWEEP_REF.mth(0, old)
            for desc, m, n, r1, r2, p in _consistency_probes(old, new, old_root, new_root, proof):
                refused = _consistency_refused(m, n, r1, r2, p)
                same_shape = (r1, r2, p) == (old_root, new_root, proof) and (
                    _same_consistency_shape(old, new, m, n)
                )
                assert refused != same_shape, (desc, old, new)


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data(), new=st.integers(min_value=2, max_value=LARGE))
def test_any_single_bit_flip_in_a_consistency_proof_is_caught(
    data: st.DataObject, new: int
) -> None:
    old = data.draw(st.integers(min_value=1, max_value=new - 1), label="old")
    proof = SWEEP_REF.consistency(old, new)
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1), label="element")
    bit = data.draw(st.integers(min_value=0, max_value=255), label="bit")
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(
            old, new, SWEEP_REF.mth(0, old), SWEEP_REF.mth(0, new), _flip(proof, element, bit)
        )


def test_rollback_to_a_smaller_tree_is_refused() -> None:
    with pytest.raises(InvalidInput):
        proofs.consistency_proof(SWEEP_STORE.__getitem__, 5, 4)
    with pytest.raises(InvalidInput):
        proofs.consistency_nodes(5, 4)
    with pytest.raises(InvalidInput):
        proofs.consistency_proof(SWEEP_STORE.__getitem__, -1, 4)
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(5, 4, SWEEP_REF.mth(0, 5), SWEEP_REF.mth(0, 4), [])
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(1, 0, SWEEP_REF.mth(0, 1), EMPTY_ROOT, [])


def test_fork_same_size_different_root_is_refused() -> None:
    root = SWEEP_REF.mth(0, 7)
    proofs.verify_consistency(7, 7, root, root, [])
    assert proofs.consistency_proof(SWEEP_STORE.__getitem__, 7, 7) == []
    with pytest.raises(IntegrityError, match="different roots"):
        proofs.verify_consistency(7, 7, root, SOME_HASH, [])
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(7, 7, root, root, [SOME_HASH])


def test_every_tree_extends_the_empty_tree_with_an_empty_proof() -> None:
    # RFC 9162 defines proofs for 0 < old < new only; c2sp.org/tlog-witness
    # requires the proof from size 0 to be empty. The old root must still be
    # the empty tree's: a "size 0" head with any other root is a lie.
    for new in (0, 1, 2, 7, 300):
        assert proofs.consistency_proof(SWEEP_STORE.__getitem__, 0, new) == []
        assert proofs.consistency_nodes(0, new) == []
        proofs.verify_consistency(0, new, EMPTY_ROOT, SWEEP_REF.mth(0, new), [])
    with pytest.raises(IntegrityError, match="empty tree"):
        proofs.verify_consistency(0, 5, SOME_HASH, SWEEP_REF.mth(0, 5), [])
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(0, 5, EMPTY_ROOT, SWEEP_REF.mth(0, 5), [SOME_HASH])
    with pytest.raises(IntegrityError):
        proofs.verify_consistency(0, 0, EMPTY_ROOT, SOME_HASH, [])
