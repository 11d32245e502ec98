"""RFC 6962 / RFC 9162 Merkle tree hashing. Pure: bytes in, hashes out."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class CompactRange:
    """The right edge of a growing tree: one hash per perfect subtree.

    A tree of size n is the concatenation of perfect subtrees, one per set bit
    of n, largest first. Keeping only their roots makes an append O(log n) and
    lets the root be computed at every size, which the verifier needs to check
    each signed checkpoint as it streams past.
    """

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        self.size = size
        self._hashes = list(hashes)
        if size < 0 or len(self._hashes) != size.bit_count():
            raise ValueError("compact range does not match its size")
        if any(len(h) != HASH_SIZE for h in self._hashes):
            raise ValueError("compact range holds a hash of the wrong length")

    @classmethod
    def from_bytes(cls, size: int, packed: bytes) -> CompactRange:
        hashes = [packed[i : i + HASH_SIZE] for i in range(0, len(packed), HASH_SIZE)]
        return cls(size, hashes)

    def to_bytes(self) -> bytes:
        return b"".join(self._hashes)

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf; return the perfect subtrees it completed as (level, index, hash).

        Level 0 is the leaf itself. The log stores every one of them, so any
        proof can later be assembled from stored hashes instead of recomputed.
        """
        node = leaf
        size = self.size
        level = 0
        completed = [(0, self.size, leaf)]
        # Each trailing 1-bit of the old size is a perfect subtree of the same
        # height as the one being carried, so the two merge, like binary addition.
        while size & 1:
            node = node_hash(self._hashes.pop(), node)
            size >>= 1
            level += 1
            completed.append((level, self.size >> level, node))
        self._hashes.append(node)
        self.size += 1
        return completed

    def push(self, leaf: bytes) -> None:
        """``append`` without reporting the completed subtrees: the verifier's fast path."""
        node = leaf
        size = self.size
        hashes = self._hashes
        while size & 1:
            node = node_hash(hashes.pop(), node)
            size >>= 1
        hashes.append(node)
        self.size += 1

    def restore(self, other: CompactRange) -> None:
        """Become ``other`` (a snapshot taken earlier), in place."""
        self.size = other.size
        self._hashes = list(other._hashes)

    def root(self) -> bytes:
        if not self._hashes:
            return EMPTY_ROOT
        root = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            root = node_hash(left, root)
        return root


def root_of(entries: Iterable[bytes]) -> bytes:
    tree = CompactRange()
    for entry in entries:
        tree.append(leaf_hash(entry))
    return tree.root()
