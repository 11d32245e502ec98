"""Verification of the whole log from its raw rows: trusts nothing the database says.

It recomputes every leaf and the root at every size, checks the indices run
0, 1, 2, ... with each entry naming its own index and the log's origin, and
checks every signed checkpoint against the root recomputed at its size. Pure:
rows, checkpoints and a public key in, a report out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit import checkpoint
from gateway.audit.log import StoredEntry
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.canonical import canonical_json
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
) -> Report:
    """Verify ``rows``; with ``start`` (a tree already trusted), only the rows after it."""
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
    for row in rows:
        expected = tree.size
        problem = _check_row(row, expected, origin)
        if problem is not None:
            report.problems.append(problem)
            # Indices past a structural break cannot be trusted to line up, so
            # the first break is the finding; stop instead of reporting echoes.
            return _finish(report, tree, pending, state, structural=True)
        tree.append(leaf_hash(row.entry))
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


def _check_row(row: StoredEntry, expected: int, origin: str) -> Problem | None:  # noqa: PLR0911
    """The first thing wrong with one row; one return per kind of tampering."""
    if row.index > expected:
        return Problem(
            expected, "deleted", f"entry {expected} is missing (next stored is {row.index})"
        )
    if row.index < expected:
        return Problem(row.index, "inserted", f"entry {row.index} appears twice")
    if leaf_hash(row.entry) != row.leaf_hash:
        return Problem(expected, "modified", f"entry {expected} does not match its leaf hash")
    try:
        data = json.loads(row.entry)
    except ValueError:
        return Problem(expected, "modified", f"entry {expected} is not JSON")
    if not isinstance(data, dict) or canonical_json(data) != row.entry:
        return Problem(expected, "modified", f"entry {expected} is not canonical JSON")
    if data.get("origin") != origin:
        return Problem(expected, "inserted", f"entry {expected} belongs to another log")
    if data.get("index") != expected:
        return Problem(
            expected,
            "reordered",
            f"position {expected} holds the entry written as {data.get('index')}",
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
