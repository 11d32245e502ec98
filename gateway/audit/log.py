"""The audit log service: durable appends (see ``sequencer``), reads, and proof material.

The caller's own state change (a grant, an organisation) rides in the same
transaction as its entries, so a change without its entry, or an entry
without its change, cannot exist. Nothing is released until ``append`` has
returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import proofs
from gateway.audit.checkpoint_store import CheckpointStore
from gateway.audit.columns import as_utc
from gateway.audit.events import check_event
from gateway.audit.merkle import CompactRange
from gateway.audit.proofs import NodeId
from gateway.audit.sequencer import Change, Sequencer
from gateway.errors import IntegrityError, InvalidInput, NotFound, NotYetCovered, Unavailable
from gateway.state.database import WriteTurn, read, writer_sessions
from gateway.state.tables import AuditEntry, MerkleNode, TreeState

APPEND_TIMEOUT_SECONDS = 2.0
# The log in index order, for the two placeholder styles drivers use (qmark: SQLite).
# The filter columns follow in the order of ``columns.NAMES``.
_ENTRIES_FROM = {
    True: "SELECT idx, entry, leaf_hash, event, subject, org_id, model_id, decision, country, "
    "tier, time FROM audit_entries WHERE idx >= ? ORDER BY idx",
    False: "SELECT idx, entry, leaf_hash, event, subject, org_id, model_id, decision, country, "
    "tier, time FROM audit_entries WHERE idx >= %s ORDER BY idx",
}


@dataclass(slots=True)
class StoredEntry:
    """One row as stored (slotted: verification reads millions of them)."""

    index: int
    entry: bytes
    leaf_hash: bytes
    # The filter columns as stored (``columns.NAMES``), when read for verification.
    columns: tuple[Any, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.entry)
        return data


class AuditLog:
    """The log as the rest of the gateway sees it: append durably, read, prove."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        origin: str,
        public_key: Ed25519PublicKey,
        append_timeout: float = APPEND_TIMEOUT_SECONDS,
        checkpoint_interval: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self.origin = origin
        self.public_key = public_key
        # How often a verifier should expect a new checkpoint: the receipts' Retry-After.
        self.checkpoint_interval = checkpoint_interval
        self.checkpoints = CheckpointStore(sessions, origin, public_key)
        self._turn = WriteTurn(sessions.kw["bind"])
        self._sequencer = Sequencer(
            writer_sessions(sessions),
            origin=origin,
            verify_note=self.checkpoints.verify,
            turn=self._turn,
        )
        self._append_timeout = append_timeout
        self._subscribers: list[Callable[[Mapping[str, Any]], None]] = []

    def append(
        self, events: Sequence[Mapping[str, Any]], change: Change | None = None
    ) -> list[int]:
        """Durably append ``events``, with ``change`` in the same transaction; their indices.

        Any failure, a full queue, or a batch not started within the timeout
        (2 s) raises Unavailable: the caller then releases nothing, and the
        entries never commit. An event type not in ``events.EVENTS``, or one
        carrying fields its type does not declare, raises UnknownEvent.
        """
        for event in events:
            check_event(event)  # an unregistered or misshapen event is a bug, never logged
        indices, logged = self._sequencer.submit_for_entries(
            events, change, timeout=self._append_timeout
        )
        self._tell_subscribers(logged, indices)
        return indices

    async def append_awaiting(
        self, events: Sequence[Mapping[str, Any]], change: Change | None = None
    ) -> list[int]:
        """``append`` for the event loop: the commit is awaited, not waited for in a thread."""
        for event in events:
            check_event(event)
        indices, logged = await self._sequencer.submit_awaiting(
            events, change, timeout=self._append_timeout
        )
        self._tell_subscribers(logged, indices)
        return indices

    def _tell_subscribers(self, logged: Sequence[Mapping[str, Any]], indices: list[int]) -> None:
        for subscriber in self._subscribers:
            for event, index in zip(logged, indices, strict=True):
                subscriber({**event, "index": index, "origin": self.origin})

    def subscribe(self, subscriber: Callable[[Mapping[str, Any]], None]) -> None:
        """Be told of every entry once it is durable (must not block: it runs in the request)."""
        self._subscribers.append(subscriber)

    def check_append(self) -> None:
        """Raise Unavailable unless appends commit now (for readiness; see ``Sequencer.check``)."""
        self._sequencer.check(timeout=self._append_timeout)

    def close(self) -> None:
        self._sequencer.close()
        self._turn.close()

    def read_nodes(self, ids: list[NodeId]) -> dict[NodeId, bytes]:
        """Stored hashes of these perfect subtrees, in two queries whatever the log's size."""
        leaves = [index for level, index in ids if level == 0]
        inner = [(level, index) for level, index in ids if level > 0]
        found: dict[NodeId, bytes] = {}
        try:
            with self._sessions() as session:
                if leaves:
                    leaf_rows = select(AuditEntry.idx, AuditEntry.leaf_hash).where(
                        AuditEntry.idx.in_(leaves)
                    )
                    found.update(((0, r.idx), r.leaf_hash) for r in session.execute(leaf_rows))
                if inner:
                    # One "level = L AND idx IN (...)" term per level, so each is a
                    # primary-key range lookup (a row-value IN is a full scan in SQLite).
                    by_level: dict[int, list[int]] = {}
                    for level, index in inner:
                        by_level.setdefault(level, []).append(index)
                    node_rows = select(MerkleNode.level, MerkleNode.idx, MerkleNode.hash).where(
                        or_(
                            *(
                                and_(MerkleNode.level == level, MerkleNode.idx.in_(indices))
                                for level, indices in by_level.items()
                            )
                        )
                    )
                    found.update(((r.level, r.idx), r.hash) for r in session.execute(node_rows))
        except SQLAlchemyError as exc:
            raise Unavailable("the audit log cannot be read") from exc
        missing = [node for node in ids if node not in found]
        if missing:
            raise IntegrityError(f"the audit log lacks stored node {missing[0]}")
        return found

    def inclusion_proof(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        """The leaf hash at ``index`` and its RFC 9162 inclusion proof in the tree of ``size``."""
        if not 0 <= index < size:
            raise InvalidInput(f"index {index} is not in a tree of size {size}")
        nodes = self.read_nodes([(0, index), *proofs.inclusion_nodes(index, size)])
        return nodes[(0, index)], proofs.inclusion_proof(nodes.__getitem__, index, size)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """The RFC 9162 proof that the tree of ``new_size`` extends that of ``old_size``.

        From the empty tree there is nothing to prove (422, as the reference
        logs answer); a size the log has not reached is NotFound, never read
        as a stored node gone missing, which would look like tampering.
        """
        if old_size < 1:
            raise InvalidInput("a consistency proof starts from a non-empty tree: from >= 1")
        if old_size > new_size:
            raise InvalidInput(f"no consistency proof from size {old_size} to {new_size}")
        size, _ = self.tree_state()
        if new_size > size:
            raise NotFound(f"the audit log has {size} entries; it has no tree of size {new_size}")
        nodes = self.read_nodes(proofs.consistency_nodes(old_size, new_size))
        return proofs.consistency_proof(nodes.__getitem__, old_size, new_size)

    def latest_checkpoint(self) -> str | None:
        return self.checkpoints.latest()

    def checkpoint_notes(self) -> list[str]:
        return list(self.checkpoints.notes())

    def receipt_material(self, index: int) -> tuple[str, bytes, list[bytes]]:
        """The newest checkpoint covering ``index``, the entry's leaf hash and its audit path.

        An entry that is durable but not yet under a checkpoint is
        NotYetCovered (ask again after the publication interval), not missing.
        """
        note = self.checkpoints.latest()
        if note is None or index >= (signed := self.checkpoints.verify(note)).size:
            size, _ = self.tree_state()
            if index >= size:
                raise NotFound(f"the audit log has no entry {index} (it has {size})")
            raise NotYetCovered(
                f"entry {index} is durable but no signed checkpoint covers it yet; "
                f"checkpoints are published every {self.checkpoint_interval:g} s",
                retry_after=max(1, round(self.checkpoint_interval)),
            )
        leaf, path = self.inclusion_proof(index, signed.size)
        return note, leaf, path

    def entry(self, index: int) -> StoredEntry:
        """Entry ``index`` exactly as stored and hashed; NotFound past the end."""
        row = read(
            self._sessions,
            lambda s: s.execute(
                select(AuditEntry.entry, AuditEntry.leaf_hash).where(AuditEntry.idx == index)
            ).one_or_none(),
        )
        if row is None:
            raise NotFound(f"the audit log has no entry {index}")
        return StoredEntry(index, bytes(row.entry), bytes(row.leaf_hash))

    def entry_time(self, index: int) -> datetime | None:
        """When entry ``index`` was written, by its indexed column (for lag, not for trust)."""
        return read(
            self._sessions,
            lambda s: s.scalar(select(AuditEntry.time).where(AuditEntry.idx == index)),
        )

    def entries(self, *, start: int = 0, batch: int = 10_000) -> Iterator[StoredEntry]:
        """Every stored row from ``start`` in index order, as stored: verification trusts none.

        Straight through the database driver: this reads the whole log, and
        SQLAlchemy's per-row cost would be half the time ``audit verify`` takes.
        """
        try:
            with self._sessions() as session:
                connection = session.connection()
                query = _ENTRIES_FROM[connection.dialect.paramstyle == "qmark"]
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                cursor.execute(query, (start,))
                while rows := cursor.fetchmany(batch):
                    for index, entry, leaf, *columns in rows:
                        yield StoredEntry(index, bytes(entry), bytes(leaf), tuple(columns))
                cursor.close()
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable("the audit log cannot be read") from exc

    def tree_state(self) -> tuple[int, bytes]:
        state: TreeState | None = read(self._sessions, lambda s: s.get(TreeState, 1))
        return (state.size, state.root) if state else (0, CompactRange().root())

    def query(
        self,
        *,
        subject: str | None = None,
        org: str | None = None,
        model: str | None = None,
        event: str | None = None,
        decision: str | None = None,
        country: str | None = None,
        tier: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = -1,
        before: int | None = None,
        limit: int = 1000,
        newest_first: bool = False,
    ) -> list[StoredEntry]:
        """Entries matching every given filter, between indices ``after`` and ``before``.

        In index order, or the newest first (a reviewer's page of the latest).
        """
        conditions = [AuditEntry.idx > after]
        if before is not None:
            conditions.append(AuditEntry.idx < before)
        for column, value in (
            (AuditEntry.subject, subject),
            (AuditEntry.org_id, org),
            (AuditEntry.model_id, model),
            (AuditEntry.event, event),
            (AuditEntry.decision, decision),
            (AuditEntry.country, country),
            (AuditEntry.tier, tier),
        ):
            if value is not None:
                conditions.append(column == value)
        # Instants compare in UTC, as they are stored (SQLite keeps no offset);
        # a time without an offset is taken as UTC.
        if since is not None:
            conditions.append(AuditEntry.time >= as_utc(since))
        if until is not None:
            conditions.append(AuditEntry.time < as_utc(until))
        statement = (
            select(AuditEntry.idx, AuditEntry.entry, AuditEntry.leaf_hash)
            .where(*conditions)
            .order_by(AuditEntry.idx.desc() if newest_first else AuditEntry.idx)
            .limit(limit)
        )
        return read(
            self._sessions,
            lambda s: [StoredEntry(r.idx, r.entry, r.leaf_hash) for r in s.execute(statement)],
        )
