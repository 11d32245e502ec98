"""The audit log service: durable, sequenced appends and signed checkpoints.

An append runs in one transaction that locks the single tree-state row,
assigns the next contiguous indices (never a database sequence, which leaves
gaps on rollback), inserts the entries, stores the new root and commits. The
caller's own state change (a grant, an organisation) rides in the same
transaction, so a change without its entry, or an entry without its change,
cannot exist. Nothing is released until ``append`` has returned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.canonical import canonical_json
from gateway.errors import IntegrityError, Unavailable, WeightgateError
from gateway.state.tables import AuditEntry, TreeState

Change = Callable[[Session, list[int]], None]


@dataclass(frozen=True)
class StoredEntry:
    index: int
    entry: bytes
    leaf_hash: bytes

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.entry)
        return data


class AuditLog:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        origin: str,
        signer: Ed25519PrivateKey,
        checkpoint_dir: Path,
    ) -> None:
        self._sessions = sessions
        self.origin = origin
        self._signer = signer
        self._checkpoint_dir = checkpoint_dir

    def append(
        self, events: Sequence[Mapping[str, Any]], change: Change | None = None
    ) -> list[int]:
        """Durably append ``events`` (and apply ``change`` in the same transaction).

        Returns the entries' indices. Any failure raises Unavailable, and then
        neither the entries nor the change exist.
        """
        try:
            with self._sessions.begin() as session:
                indices, size, root = self._sequence(session, events)
                if change is not None:
                    change(session, indices)
        except WeightgateError:
            raise
        except (SQLAlchemyError, OSError) as exc:
            raise Unavailable("the audit log cannot be written; nothing was granted") from exc
        self._publish_checkpoint(size, root)
        return indices

    def _sequence(
        self, session: Session, events: Sequence[Mapping[str, Any]]
    ) -> tuple[list[int], int, bytes]:
        state = session.scalars(
            select(TreeState).where(TreeState.id == 1).with_for_update()
        ).one_or_none()
        if state is None:
            raise IntegrityError("the audit tree head is missing; refusing to append")
        tree = self._checked_head(state)
        indices = []
        for event in events:
            index = tree.size
            entry = canonical_json({**event, "index": index, "origin": self.origin})
            leaf = leaf_hash(entry)
            tree.append(leaf)
            session.add(
                AuditEntry(
                    idx=index,
                    entry=entry,
                    leaf_hash=leaf,
                    event=str(event["event"]),
                    subject=_get(event, "actor", "subject"),
                    org_id=_get(event, "actor", "org"),
                    model_id=event.get("model"),
                    decision=_get(event, "decision", "effect"),
                    time=datetime.fromisoformat(str(event["time"])),
                )
            )
            indices.append(index)
        state.size = tree.size
        state.root = tree.root()
        state.frontier = tree.to_bytes()
        return indices, state.size, state.root

    def _checked_head(self, state: TreeState) -> CompactRange:
        """The stored tree head, refused if it disagrees with itself or our last signature.

        Extending a corrupted head would sign a checkpoint inconsistent with
        an earlier one, which a transparency log must never do.
        """
        try:
            tree = CompactRange.from_bytes(state.size, state.frontier)
        except ValueError:
            raise IntegrityError("the audit tree head is corrupted; refusing to append") from None
        if tree.root() != state.root:
            raise IntegrityError("the audit tree head is corrupted; refusing to append")
        latest = self.latest_checkpoint()
        if latest is not None:
            signed = checkpoint.verify(latest, self.origin, self._signer.public_key())
            if signed.size > tree.size or (signed.size == tree.size and signed.root != tree.root()):
                raise IntegrityError(
                    f"the audit tree head (size {tree.size}) contradicts the signed checkpoint "
                    f"of size {signed.size}; refusing to append"
                )
        return tree

    def _publish_checkpoint(self, size: int, root: bytes) -> None:
        note = checkpoint.sign(
            checkpoint.Checkpoint(self.origin, size, root), self.origin, self._signer
        )
        self._checkpoint_dir.mkdir(parents=True, exist_ok=True)
        target = self._checkpoint_dir / f"{size:012d}.txt"
        partial = target.with_suffix(".part")
        partial.write_text(note, encoding="utf-8")
        partial.replace(target)

    def latest_checkpoint(self) -> str | None:
        notes = sorted(self._checkpoint_dir.glob("*.txt")) if self._checkpoint_dir.is_dir() else []
        return notes[-1].read_text(encoding="utf-8") if notes else None

    def checkpoint_notes(self) -> list[str]:
        if not self._checkpoint_dir.is_dir():
            return []
        return [p.read_text(encoding="utf-8") for p in sorted(self._checkpoint_dir.glob("*.txt"))]

    def entries(self, *, batch: int = 10_000) -> Iterator[StoredEntry]:
        """Every stored row in index order, as stored: verification trusts none of it."""
        try:
            with self._sessions() as session:
                query = select(AuditEntry.idx, AuditEntry.entry, AuditEntry.leaf_hash).order_by(
                    AuditEntry.idx
                )
                for row in session.execute(query.execution_options(yield_per=batch)):
                    yield StoredEntry(row.idx, row.entry, row.leaf_hash)
        except SQLAlchemyError as exc:
            raise Unavailable("the audit log cannot be read") from exc

    def tree_state(self) -> tuple[int, bytes]:
        try:
            with self._sessions() as session:
                state = session.get(TreeState, 1)
        except SQLAlchemyError as exc:
            raise Unavailable("the audit log cannot be read") from exc
        return (state.size, state.root) if state else (0, CompactRange().root())

    def query(
        self,
        *,
        subject: str | None = None,
        org: str | None = None,
        model: str | None = None,
        event: str | None = None,
        decision: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: int = -1,
        limit: int = 1000,
    ) -> list[StoredEntry]:
        """Entries matching every given filter, in index order, after index ``after``."""
        conditions = [AuditEntry.idx > after]
        for column, value in (
            (AuditEntry.subject, subject),
            (AuditEntry.org_id, org),
            (AuditEntry.model_id, model),
            (AuditEntry.event, event),
            (AuditEntry.decision, decision),
        ):
            if value is not None:
                conditions.append(column == value)
        if since is not None:
            conditions.append(AuditEntry.time >= since)
        if until is not None:
            conditions.append(AuditEntry.time < until)
        statement = (
            select(AuditEntry.idx, AuditEntry.entry, AuditEntry.leaf_hash)
            .where(*conditions)
            .order_by(AuditEntry.idx)
            .limit(limit)
        )
        try:
            with self._sessions() as session:
                return [
                    StoredEntry(r.idx, r.entry, r.leaf_hash) for r in session.execute(statement)
                ]
        except SQLAlchemyError as exc:
            raise Unavailable("the audit log cannot be read") from exc


def _get(event: Mapping[str, Any], outer: str, inner: str) -> Any:
    value = event.get(outer)
    return value.get(inner) if isinstance(value, Mapping) else None
