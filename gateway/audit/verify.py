"""Verification of the whole log from its raw rows: trusts nothing the database says.

It recomputes every leaf and the root at every size, checks the indices run
0, 1, 2, ... with each entry naming its own index and the log's origin, and
checks every signed checkpoint (those in the database, and those anchored
outside it) against the root recomputed at its size. Entries newer than the
newest checkpoint are not a finding: checkpoints are published on an
interval, so a live log always has such a tail; the report counts them. Pure:
rows, checkpoints and a public key in, a report out.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
from gateway.audit.anchors import AnchoredCheckpoint
from gateway.audit.columns import mismatch
from gateway.audit.log import StoredEntry
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.errors import IntegrityError


@dataclass(frozen=True)
class Problem:
    index: int | None
    kind: str  # modified, deleted, inserted, reordered, truncated, bad-signature, malformed
    message: str


@dataclass
class Report:
    size: int = 0
    checkpoints: int = 0  # signed checkpoints checked, database and anchors together
    anchored: int = 0  # of which were read from the anchor store
    unsigned: int = 0  # newest entries no checkpoint covers yet (the publication interval)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


# Signed checkpoints waiting for the tree to reach their size, with where each was read.
_Pending = dict[int, list[tuple[checkpoint.Checkpoint, str]]]


def verify_log(
    rows: Iterable[StoredEntry],
    *,
    origin: str,
    public_key: Ed25519PublicKey,
    checkpoint_notes: Iterable[str],
    state: tuple[int, bytes],
    anchored: Iterable[AnchoredCheckpoint] = (),
    start: CompactRange | None = None,
    workers: int = 1,
) -> Report:
    """Verify ``rows``; with ``start`` (a tree already trusted), only the rows after it.

    ``workers`` > 1 checks entries (hash, JSON, origin) in that many processes
    while this one builds the tree: the per-entry work is what costs, and it
    does not depend on an entry's neighbours.
    """
    report = Report()
    pending: _Pending = {}
    sources = [
        *((note, "the database") for note in checkpoint_notes),
        *((anchor.note, anchor.where) for anchor in anchored),
    ]
    for note, where in sources:
        try:
            signed = checkpoint.verify(note, origin, public_key)
        except IntegrityError as exc:
            report.problems.append(Problem(None, "bad-signature", f"{exc} (in {where})"))
            continue
        if signed.origin != origin:
            report.problems.append(
                Problem(None, "bad-signature", f"checkpoint in {where} is for another log")
            )
            continue
        pending.setdefault(signed.size, []).append((signed, where))
        report.anchored += where != "the database"
    # A copy: the caller's trusted tree stays as it was.
    tree = CompactRange.from_bytes(start.size, start.to_bytes()) if start else CompactRange()
    pending = {size: signed for size, signed in pending.items() if size >= tree.size}
    report.checkpoints = sum(len(signed) for signed in pending.values())
    newest_signed = max(pending, default=tree.size)

    verified_up_to = [tree.size]
    _check_checkpoint(tree, pending, report, verified_up_to)
    for row, inspected in _inspected(rows, origin, workers):
        expected = tree.size
        # The common case, an entry in its place that is right in itself, costs
        # two comparisons; only a failure builds the detailed finding.
        if row.index != expected or inspected[2] is not None or inspected[1] != expected:
            problem = _check_row(row, inspected, expected)
            if problem is not None:
                report.problems.append(problem)
                # Indices past a structural break cannot be trusted to line up,
                # so the first break is the finding; stop instead of reporting echoes.
                return _finish(report, tree, pending, state, structural=True)
        tree.push(inspected[0])
        if tree.size in pending:
            _check_checkpoint(tree, pending, report, verified_up_to)
    report = _finish(report, tree, pending, state, structural=False)
    report.unsigned = max(0, tree.size - newest_signed)
    return report


# What one entry says about itself, wherever it sits in the log: its leaf hash,
# the index it claims, and (kind, message) if it is wrong in itself. A plain
# tuple, because worker processes send back millions of them.
_Inspected = tuple[bytes, object, str | None, str]


def _inspect(
    entry: bytes, stored_leaf: bytes, origin: str, columns: tuple[Any, ...] | None = None
) -> _Inspected:
    leaf = leaf_hash(entry)
    if leaf != stored_leaf:
        return leaf, None, "modified", "does not match its leaf hash"
    try:
        # A float has several spellings, so canonical entries have none.
        data = json.loads(entry, parse_float=_no_floats, parse_constant=_no_floats)
    except ValueError:
        return leaf, None, "modified", "is not canonical JSON"
    if not isinstance(data, dict):
        return leaf, None, "modified", "is not canonical JSON"
    if data.get("origin") != origin:
        return leaf, None, "inserted", "belongs to another log"
    if columns is not None and (column := mismatch(data, columns)) is not None:
        # The entry is intact but its filter column lies: a query on that
        # column would hide it from a reviewer.
        return leaf, None, "modified", f"has a {column} column that does not match it"
    return leaf, data.get("index"), None, ""


def _inspect_chunk(
    chunk: list[tuple[bytes, bytes, tuple[Any, ...] | None]], origin: str
) -> list[_Inspected]:
    return [_inspect(entry, leaf, origin, columns) for entry, leaf, columns in chunk]


def _inspected(
    rows: Iterable[StoredEntry], origin: str, workers: int
) -> Iterator[tuple[StoredEntry, _Inspected]]:
    if workers <= 1:
        for row in rows:
            yield row, _inspect(row.entry, row.leaf_hash, origin, row.columns)
        return
    chunks = _chunks(rows, 20_000)
    with get_context("spawn").Pool(workers) as pool:
        batches = ((chunk, [(r.entry, r.leaf_hash, r.columns) for r in chunk]) for chunk in chunks)
        pending: deque[tuple[list[StoredEntry], AsyncResult[list[_Inspected]]]] = deque()
        for chunk, payload in batches:
            pending.append((chunk, pool.apply_async(_inspect_chunk, (payload, origin))))
            # Keep a few chunks in flight, not the whole log in memory.
            while len(pending) > 2 * workers:
                done, result = pending.popleft()
                yield from zip(done, result.get(), strict=True)
        while pending:
            done, result = pending.popleft()
            yield from zip(done, result.get(), strict=True)


def _chunks(rows: Iterable[StoredEntry], size: int) -> Iterator[list[StoredEntry]]:
    chunk: list[StoredEntry] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _check_row(row: StoredEntry, inspected: _Inspected, expected: int) -> Problem | None:
    """The first thing wrong with one row at its position in the log."""
    if row.index > expected:
        return Problem(
            expected, "deleted", f"entry {expected} is missing (next stored is {row.index})"
        )
    if row.index < expected:
        return Problem(row.index, "inserted", f"entry {row.index} appears twice")
    _, claimed, kind, message = inspected
    if kind is not None:
        return Problem(expected, kind, f"entry {expected} {message}")
    if claimed != expected:
        return Problem(
            expected, "reordered", f"position {expected} holds the entry written as {claimed}"
        )
    return None


def _check_checkpoint(
    tree: CompactRange, pending: _Pending, report: Report, verified_up_to: list[int]
) -> None:
    """Compare the recomputed root with every checkpoint signed at this size, if any.

    A mismatch means an entry between the last matching checkpoint and this
    one was changed (even with its stored leaf hash recomputed).
    """
    root = tree.root()
    matched = True
    for signed, where in pending.pop(tree.size, []):
        if signed.root == root:
            continue
        matched = False
        first = verified_up_to[0]
        report.problems.append(
            Problem(
                first,
                "modified",
                f"entries {first}..{tree.size - 1} do not match the checkpoint signed at size "
                f"{tree.size} (in {where})",
            )
        )
    if matched:
        verified_up_to[0] = tree.size


def _finish(
    report: Report,
    tree: CompactRange,
    pending: _Pending,
    state: tuple[int, bytes],
    *,
    structural: bool,
) -> Report:
    report.size = tree.size
    if structural:
        return report
    for size in sorted(pending):
        for _, where in pending[size]:
            report.problems.append(
                Problem(
                    tree.size,
                    "truncated",
                    f"the log has {tree.size} entries but a checkpoint signed at size {size} "
                    f"(in {where}) covers more",
                )
            )
    state_size, state_root = state
    if state_size != tree.size or state_root != tree.root():
        report.problems.append(
            Problem(
                min(state_size, tree.size),
                _size_mismatch(state_size, tree.size),
                f"the stored tree head (size {state_size}) does not match the entries "
                f"(size {tree.size})",
            )
        )
    return report


def _size_mismatch(state_size: int, entries: int) -> str:
    if state_size > entries:
        return "truncated"
    return "inserted" if state_size < entries else "modified"


def trusted_start(
    trusted_note: str,
    origin: str,
    public_key: Ed25519PublicKey,
    nodes: dict[tuple[int, int], bytes],
) -> CompactRange:
    """The tree a trusted checkpoint names, rebuilt from the stored subtree hashes.

    The hashes are exactly the left side of a consistency proof from that
    checkpoint; if they do not hash to its root, history before it was
    rewritten, and IntegrityError says so.
    """
    trusted = checkpoint.verify(trusted_note, origin, public_key)
    tree = CompactRange(trusted.size, [nodes[node] for node in frontier_nodes(trusted.size)])
    if tree.root() != trusted.root:
        raise IntegrityError(
            f"the stored log does not match the trusted checkpoint of size {trusted.size}: "
            "history before it was rewritten"
        )
    return tree


def frontier_nodes(size: int) -> list[tuple[int, int]]:
    """The perfect subtrees, largest first, that a tree of ``size`` leaves is made of."""
    nodes = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def _no_floats(_text: str) -> None:
    raise ValueError("floats are not canonical")
