"""Verification of the whole log from its raw rows: trusts nothing the database says.

It recomputes every leaf and the root at every size, checks the indices run
0, 1, 2, ... with each entry naming its own index and the log's origin, and
checks every signed checkpoint against the root recomputed at its size. Pure:
rows, checkpoints and a public key in, a report out.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
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
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_log(
    rows: Iterable[StoredEntry],
    *,
    origin: str,
    public_key: Ed25519PublicKey,
    checkpoint_notes: Iterable[str],
    state: tuple[int, bytes],
    start: CompactRange | None = None,
    workers: int = 1,
) -> Report:
    """Verify ``rows``; with ``start`` (a tree already trusted), only the rows after it.

    ``workers`` > 1 checks entries (hash, JSON, origin) in that many processes
    while this one builds the tree: the per-entry work is what costs, and it
    does not depend on an entry's neighbours.
    """
    report = Report()
    pending: dict[int, checkpoint.Checkpoint] = {}
    for note in checkpoint_notes:
        try:
            signed = checkpoint.verify(note, origin, public_key)
        except IntegrityError as exc:
            report.problems.append(Problem(None, "bad-signature", str(exc)))
            continue
        if signed.origin != origin:
            report.problems.append(
                Problem(None, "bad-signature", f"checkpoint is for another log ({signed.origin})")
            )
            continue
        pending[signed.size] = signed
    # A copy: the caller's trusted tree stays as it was.
    tree = CompactRange.from_bytes(start.size, start.to_bytes()) if start else CompactRange()
    pending = {size: signed for size, signed in pending.items() if size >= tree.size}
    report.checkpoints = len(pending)
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
    if report.ok and tree.size > newest_signed:
        # Entries no signature covers could have been written by anyone with
        # database access; the gateway checkpoints every batch it commits.
        report.problems.append(
            Problem(
                newest_signed,
                "inserted",
                f"entries {newest_signed}..{tree.size - 1} are not covered by any signed "
                "checkpoint",
            )
        )
    return report


# What one entry says about itself, wherever it sits in the log: its leaf hash,
# the index it claims, and (kind, message) if it is wrong in itself. A plain
# tuple, because worker processes send back millions of them.
_Inspected = tuple[bytes, object, str | None, str]


def _inspect(entry: bytes, stored_leaf: bytes, origin: str) -> _Inspected:
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
    return leaf, data.get("index"), None, ""


def _inspect_chunk(chunk: list[tuple[bytes, bytes]], origin: str) -> list[_Inspected]:
    return [_inspect(entry, leaf, origin) for entry, leaf in chunk]


def _inspected(
    rows: Iterable[StoredEntry], origin: str, workers: int
) -> Iterator[tuple[StoredEntry, _Inspected]]:
    if workers <= 1:
        for row in rows:
            yield row, _inspect(row.entry, row.leaf_hash, origin)
        return
    chunks = _chunks(rows, 20_000)
    with get_context("spawn").Pool(workers) as pool:
        batches = ((chunk, [(r.entry, r.leaf_hash) for r in chunk]) for chunk in chunks)
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
    tree: CompactRange,
    pending: dict[int, checkpoint.Checkpoint],
    report: Report,
    verified_up_to: list[int],
) -> None:
    """Compare the recomputed root with a checkpoint signed at this size, if any.

    A mismatch means an entry between the last matching checkpoint and this
    one was changed (even with its stored leaf hash recomputed); with a
    checkpoint per batch that names the batch, and usually the entry.
    """
    signed = pending.pop(tree.size, None)
    if signed is None:
        return
    if signed.root == tree.root():
        verified_up_to[0] = tree.size
        return
    first = verified_up_to[0]
    report.problems.append(
        Problem(
            first,
            "modified",
            f"entries {first}..{tree.size - 1} do not match the checkpoint signed at size "
            f"{tree.size}",
        )
    )


def _finish(
    report: Report,
    tree: CompactRange,
    pending: dict[int, checkpoint.Checkpoint],
    state: tuple[int, bytes],
    *,
    structural: bool,
) -> Report:
    report.size = tree.size
    if structural:
        return report
    for size in sorted(pending):
        report.problems.append(
            Problem(
                tree.size,
                "truncated",
                f"the log has {tree.size} entries but a signed checkpoint covers {size}",
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
