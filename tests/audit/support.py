"""Helpers for audit-log drills: fill a real log, tamper with its rows by SQL, and verify it.

The tamper helpers act like an attacker with write access to the database and
nothing else: they can rewrite rows and the tree-state row (recomputing any
hash they like), but they do not hold the audit signing key.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update

from gateway.audit import checkpoint
from gateway.audit.columns import indexed_columns
from gateway.audit.events import build_event
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.verify import Report, verify_log
from gateway.bootstrap import Services
from gateway.canonical import canonical_json
from gateway.state.tables import AuditEntry, MerkleNode, SignedCheckpoint, TreeState
from tests.conftest import MODEL, operator

SINGLE_APPENDS = 20
BATCH = 10
FILLED = SINGLE_APPENDS + BATCH
# One signed checkpoint published after each append: sizes 1..20, then 30 for the batch.
FILLED_CHECKPOINTS = SINGLE_APPENDS + 1


@dataclass(frozen=True)
class Row:
    idx: int
    entry: bytes
    leaf_hash: bytes

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.entry)
        return loaded


def decision_event(services: Services, number: int, *, effect: str = "deny") -> dict[str, Any]:
    return build_event(
        "grant.deny",
        time=services.clock.now(),
        context=operator(),
        actor={"subject": f"user-{number}", "org": "rhein"},
        model=MODEL,
        decision={"effect": effect, "tier": 3, "reasons": [{"code": "tier3-country"}]},
    )


def append_and_publish(services: Services, events: list[dict[str, Any]]) -> list[int]:
    """Append ``events``, then run one publication round so a checkpoint covers them."""
    indices = services.audit.append(events)
    published = services.publisher.publish()
    assert published is not None and published.size == indices[-1] + 1
    return indices


def fill(services: Services) -> None:
    """Twenty single appends, then one batch of ten: 30 entries, 21 checkpoints.

    Appends no longer sign; a publication round after each one gives the log
    a checkpoint at every size 1..20 and at 30, so a tampered entry is always
    under a signature close to it.
    """
    for number in range(SINGLE_APPENDS):
        append_and_publish(services, [decision_event(services, number)])
    append_and_publish(
        services, [decision_event(services, number) for number in range(SINGLE_APPENDS, FILLED)]
    )


def verify(services: Services) -> Report:
    return verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )


def rows(services: Services) -> list[Row]:
    with services.engine.connect() as connection:
        result = connection.execute(
            select(AuditEntry.idx, AuditEntry.entry, AuditEntry.leaf_hash).order_by(AuditEntry.idx)
        )
        return [Row(r.idx, r.entry, r.leaf_hash) for r in result]


def row(services: Services, idx: int) -> Row:
    return next(r for r in rows(services) if r.idx == idx)


def overwrite(services: Services, idx: int, entry: bytes, leaf: bytes) -> None:
    """Store ``entry`` and ``leaf`` at ``idx``, with the filter columns brought in line.

    The forger keeps the indexed columns (subject, decision, ...) agreeing with
    the bytes they wrote, so only hashes and signatures can give the change
    away; columns that lie are drilled in ``test_column_integrity``.
    """
    values: dict[str, Any] = {"entry": entry, "leaf_hash": leaf}
    # Bytes that are not an event at all leave the columns as they were.
    with contextlib.suppress(ValueError, KeyError, TypeError):
        values.update(indexed_columns(json.loads(entry)))
    with services.engine.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.idx == idx).values(**values))


def rewrite_entry(services: Services, idx: int, **changes: Any) -> None:
    """Change fields of entry ``idx`` and recompute its leaf hash, as a careful forger would."""
    forged = canonical_json({**row(services, idx).data(), **changes})
    overwrite(services, idx, forged, leaf_hash(forged))


def delete_where(services: Services, *, first: int, last: int | None = None) -> None:
    """Delete rows ``first..last`` (inclusive; to the end when ``last`` is None)."""
    condition = AuditEntry.idx >= first
    if last is not None:
        condition = condition & (AuditEntry.idx <= last)
    with services.engine.begin() as connection:
        connection.execute(delete(AuditEntry).where(condition))


def insert_forged(services: Services, idx: int, event: dict[str, Any]) -> None:
    """A valid-looking entry: right index, right origin, canonical, matching hash and columns."""
    entry = canonical_json({**event, "index": idx, "origin": services.audit.origin})
    with services.engine.begin() as connection:
        connection.execute(
            insert(AuditEntry).values(
                idx=idx, entry=entry, leaf_hash=leaf_hash(entry), **indexed_columns(event)
            )
        )


def rewrite_head(services: Services) -> None:
    """Make the tree-state row agree with whatever rows are now stored."""
    tree = CompactRange()
    for stored in rows(services):
        tree.append(stored.leaf_hash)
    with services.engine.begin() as connection:
        connection.execute(
            update(TreeState)
            .where(TreeState.id == 1)
            .values(size=tree.size, root=tree.root(), frontier=tree.to_bytes())
        )


def rewrite_nodes(services: Services) -> None:
    """Recompute every stored subtree hash from whatever rows are now stored, as a forger would."""
    tree = CompactRange()
    nodes: list[dict[str, Any]] = []
    for stored in rows(services):
        nodes.extend(
            {"level": level, "idx": index, "hash": digest}
            for level, index, digest in tree.append(stored.leaf_hash)
            if level > 0
        )
    with services.engine.begin() as connection:
        connection.execute(delete(MerkleNode))
        if nodes:
            connection.execute(insert(MerkleNode), nodes)


def signed_checkpoint(services: Services, size: int) -> checkpoint.Checkpoint:
    """The checkpoint row of ``size`` in the database, its signature checked."""
    note = services.audit.checkpoints.note_at(size)
    assert note is not None, f"no checkpoint of size {size} in the database"
    return checkpoint.verify(note, services.audit.origin, services.keys.audit_signer.public_key())


def replace_checkpoint(services: Services, size: int, note: str, root: bytes) -> None:
    """Overwrite the checkpoint row of ``size`` by SQL, its root column to match the note."""
    with services.engine.begin() as connection:
        result = connection.execute(
            update(SignedCheckpoint)
            .where(SignedCheckpoint.size == size)
            .values(note=note, root=root)
        )
        assert result.rowcount == 1
