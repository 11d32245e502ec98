"""RFC 9162 inclusion and consistency proofs, built from stored perfect subtrees. Pure.

The log stores the hash of every *perfect* subtree: node ``(level, index)``
covers leaves ``[index * 2**level, (index + 1) * 2**level)``, and level 0 is
the leaf hashes. Any hash a proof needs is either one such node or, on the
ragged right edge of the tree, a short fold of them, so a proof costs one
batched lookup of O(log n) rows at any tree size, old or current.

Building a proof trusts the store; verifying one trusts nothing but the root.
The two halves share no code on purpose: a bug in the planner cannot also
excuse itself in the verifier.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.audit.merkle import EMPTY_ROOT, HASH_SIZE, node_hash
from gateway.errors import IntegrityError, InvalidInput

NodeId = tuple[int, int]
NodeReader = Callable[[NodeId], bytes]
Range = tuple[int, int]


def _split(size: int) -> int:
    """RFC 9162's k: the largest power of two smaller than ``size`` (size >= 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def subtree_nodes(start: int, end: int) -> list[NodeId]:
    """The perfect nodes whose fold is MTH(leaves[start:end]), largest first.

    Only ranges that start on a boundary of their own largest perfect subtree
    can be built from stored nodes; those are exactly the ones RFC 9162's
    PATH and SUBPROOF recursions produce, and the right edge of any tree.
    """
    if not 0 <= start <= end:
        raise InvalidInput(f"leaf range [{start}, {end}) is not a range")
    nodes: list[NodeId] = []
    offset, remaining = start, end - start
    if remaining and offset % (1 << (remaining.bit_length() - 1)):
        raise InvalidInput(f"leaf range [{start}, {end}) is not made of stored subtrees")
    while remaining:
        level = remaining.bit_length() - 1
        nodes.append((level, offset >> level))
        offset += 1 << level
        remaining -= 1 << level
    return nodes


def _read(read: NodeReader, node: NodeId) -> bytes:
    digest = read(node)
    # A truncated or padded row would otherwise be folded into a proof that
    # fails far from the cause; name the damaged node instead.
    if len(digest) != HASH_SIZE:
        raise IntegrityError(f"stored Merkle node {node} is not a {HASH_SIZE}-byte hash")
    return digest


def subtree_hash(read: NodeReader, start: int, end: int) -> bytes:
    """MTH(leaves[start:end]); the empty range is the empty tree's hash."""
    hashes = [_read(read, node) for node in subtree_nodes(start, end)]
    if not hashes:
        return EMPTY_ROOT
    # MTH splits at the largest power of two, so the perfect pieces nest to
    # the right: H(a, H(b, H(c, d))).
    digest = hashes[-1]
    for left in reversed(hashes[:-1]):
        digest = node_hash(left, digest)
    return digest


def root_from_nodes(read: NodeReader, size: int) -> bytes:
    """The root at ``size``, from stored nodes: the same value CompactRange computes."""
    if size < 0:
        raise InvalidInput(f"tree size {size} is negative")
    return subtree_hash(read, 0, size)


def _inclusion_ranges(index: int, size: int) -> list[Range]:
    """PATH(index, D[0:size]) as leaf ranges, from the leaf's sibling up."""
    if not 0 <= index < size:
        raise InvalidInput(f"leaf {index} is not in a tree of size {size}")
    lo, hi = 0, size
    upward: list[Range] = []
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            upward.append((lo + k, hi))
            hi = lo + k
        else:
            upward.append((lo, lo + k))
            lo += k
    return upward[::-1]


def _consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """PROOF(old_size, D[0:new_size]) = SUBPROOF(old_size, D[0:new_size], true) as leaf ranges.

    RFC 9162 defines the proof for 0 < old_size < new_size only. The two
    edges are empty here: SUBPROOF(n, D[n], true) is empty by the RFC's own
    recursion, and c2sp.org/tlog-witness requires an empty proof from size 0
    (every tree extends the empty tree).
    """
    if not 0 <= old_size <= new_size:
        raise InvalidInput(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    lo, hi, m, whole_old_tree = 0, new_size, old_size, True
    upward: list[Range] = []
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            upward.append((lo + k, hi))
            hi = lo + k
        else:
            upward.append((lo, lo + k))
            lo, m, whole_old_tree = lo + k, m - k, False
    # When the old tree is itself a left subtree of the new one, the verifier
    # already holds its root, so the RFC leaves it out.
    first = [] if whole_old_tree else [(lo, hi)]
    return first + upward[::-1]


def _nodes(ranges: list[Range]) -> list[NodeId]:
    return [node for start, end in ranges for node in subtree_nodes(start, end)]


def inclusion_nodes(index: int, size: int) -> list[NodeId]:
    """Every stored node ``inclusion_proof(read, index, size)`` reads, for one batched query."""
    return _nodes(_inclusion_ranges(index, size))


def consistency_nodes(old_size: int, new_size: int) -> list[NodeId]:
    """Every stored node ``consistency_proof(read, old, new)`` reads, for one batched query."""
    return _nodes(_consistency_ranges(old_size, new_size))


def inclusion_proof(read: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 section 2.1.3.1 audit path for leaf ``index`` in the tree of ``size``."""
    return [subtree_hash(read, start, end) for start, end in _inclusion_ranges(index, size)]


def consistency_proof(read: NodeReader, old_size: int, new_size: int) -> list[bytes]:
    """RFC 9162 section 2.1.4.1 proof that ``new_size`` extends ``old_size``; empty from 0."""
    ranges = _consistency_ranges(old_size, new_size)
    return [subtree_hash(read, start, end) for start, end in ranges]


# Verification ----------------------------------------------------------------


def _check_hashes(*hashes: bytes) -> None:
    # A proof element of the wrong length cannot be a node; refusing it
    # up front keeps "trailing garbage" from ever reaching the hash.
    if any(len(h) != HASH_SIZE for h in hashes):
        raise IntegrityError("a proof, leaf or root hash has the wrong length")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 section 2.1.3.2. ``leaf`` is the leaf *hash*, ``leaf_hash(entry)``."""
    _check_hashes(leaf, root, *proof)
    if not 0 <= index < size:
        raise IntegrityError(f"leaf {index} is not in a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise IntegrityError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise IntegrityError(f"leaf {index} is not in the tree of size {size} with this root")


def _verify_trivial_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    if proof:
        raise IntegrityError("a consistency proof to an equal or empty tree must be empty")
    if old_size == 0 and old_root != EMPTY_ROOT:
        raise IntegrityError("the empty tree has the wrong root")
    if old_size == new_size and old_root != new_root:
        raise IntegrityError(f"two different roots for the tree of size {new_size}")


def _consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Steps 1 to 6 of RFC 9162 section 2.1.4.2 (0 < old_size < new_size): the two roots."""
    if not proof:
        raise IntegrityError("consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise IntegrityError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise IntegrityError("consistency proof is shorter than the tree is deep")
    return fr, sr


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 section 2.1.4.2, with the two edges the RFC leaves out made explicit.

    From size 0 the proof must be empty and the old root must be the empty
    tree's hash (a "size 0" checkpoint with any other root is a lie). At equal
    sizes the proof must be empty and the roots equal: same size, different
    root is a fork.
    """
    _check_hashes(old_root, new_root, *proof)
    if not 0 <= old_size <= new_size:
        raise IntegrityError(f"size {new_size} cannot extend size {old_size}")
    if old_size in (0, new_size):
        _verify_trivial_consistency(old_size, new_size, old_root, new_root, proof)
        return
    fr, sr = _consistency_roots(old_size, new_size, old_root, proof)
    if fr != old_root or sr != new_root:
        raise IntegrityError(f"size {new_size} does not extend size {old_size} with these roots")
