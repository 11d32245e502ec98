"""Group commit for the audit log: many requests, one transaction, one checkpoint.

Requests hand their events (and the state change that must commit with them)
to one writer thread per process. The writer takes whatever is queued, locks
the single tree-state row, and for each request, inside a savepoint, applies
its change and assigns its entries the next contiguous indices. A request
whose change fails is rolled back alone; the others commit together, durably,
and only then learn their indices. Replicas in other processes queue on the
same row lock, so the log stays one linear sequence.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.checkpoint_store import CheckpointStore
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.canonical import canonical_json
from gateway.errors import IntegrityError, Unavailable, WeightgateError
from gateway.state.tables import AuditEntry, MerkleNode, TreeState

Change = Callable[[Session, list[int]], None]
MAX_BATCH = 256


@dataclass
class _Rows:
    """The rows a batch will insert, kept until its requests have all been applied."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Pending:
    events: Sequence[Mapping[str, Any]]
    change: Change | None
    result: Future[list[int]] = field(default_factory=Future)


class Sequencer:
    def __init__(
        self, sessions: sessionmaker[Session], *, origin: str, checkpoints: CheckpointStore
    ) -> None:
        self._sessions = sessions
        self._origin = origin
        self._checkpoints = checkpoints
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._thread.start()

    def submit(
        self, events: Sequence[Mapping[str, Any]], change: Change | None, *, timeout: float
    ) -> list[int]:
        """Indices of ``events`` once durable; Unavailable if that takes over ``timeout`` s."""
        pending = _Pending(events, change)
        self._queue.put(pending)
        try:
            return pending.result.result(timeout=timeout)
        except FutureTimeout:
            # The batch may still commit later; the caller has released nothing.
            raise Unavailable(
                "the audit log did not confirm in time; nothing was granted"
            ) from None

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            self._commit(batch)

    def _commit(self, batch: list[_Pending]) -> None:
        outcomes: dict[int, list[int] | BaseException] = {}
        try:
            with self._sessions.begin() as session:
                state, tree = self._locked_head(session)
                rows = _Rows()
                for position, pending in enumerate(batch):
                    outcomes[position] = self._apply(session, tree, rows, pending)
                # The batch's entries and nodes go in as two bulk inserts.
                if rows.entries:
                    session.execute(insert(AuditEntry), rows.entries)
                if rows.nodes:
                    session.execute(insert(MerkleNode), rows.nodes)
                state.size, state.root, state.frontier = tree.size, tree.root(), tree.to_bytes()
            self._checkpoints.publish(tree.size, tree.root())
        except WeightgateError as exc:
            outcomes = dict.fromkeys(range(len(batch)), exc)
        except (SQLAlchemyError, OSError) as exc:
            failure = Unavailable("the audit log cannot be written; nothing was granted")
            failure.__cause__ = exc
            outcomes = dict.fromkeys(range(len(batch)), failure)
        except BaseException as exc:
            outcomes = dict.fromkeys(range(len(batch)), exc)
        for position, pending in enumerate(batch):
            outcome = outcomes.get(position, Unavailable("the audit log cannot be written"))
            if isinstance(outcome, BaseException):
                pending.result.set_exception(outcome)
            else:
                pending.result.set_result(outcome)

    def _apply(
        self, session: Session, tree: CompactRange, rows: _Rows, pending: _Pending
    ) -> list[int] | BaseException:
        """One request: its entries and its change together, or neither.

        A change runs in a savepoint so that its failure undoes it alone;
        entries without a change only need their rows dropped from the batch.
        """
        if pending.change is None:
            return self._sequence(tree, rows, pending.events)
        snapshot = CompactRange.from_bytes(tree.size, tree.to_bytes())
        marks = len(rows.entries), len(rows.nodes)
        savepoint = session.begin_nested()
        try:
            indices = self._sequence(tree, rows, pending.events)
            pending.change(session, indices)
            session.flush()
        except Exception as exc:
            savepoint.rollback()
            tree.restore(snapshot)
            del rows.entries[marks[0] :], rows.nodes[marks[1] :]
            if isinstance(exc, SQLAlchemyError):
                failure = Unavailable("the audit log cannot be written; nothing was granted")
                failure.__cause__ = exc
                return failure
            return exc
        savepoint.commit()
        return indices

    def _sequence(
        self, tree: CompactRange, rows: _Rows, events: Sequence[Mapping[str, Any]]
    ) -> list[int]:
        indices = []
        for event in events:
            index = tree.size
            entry = canonical_json({**event, "index": index, "origin": self._origin})
            leaf = leaf_hash(entry)
            rows.nodes.extend(
                {"level": level, "idx": node, "hash": digest}
                for level, node, digest in tree.append(leaf)
                if level > 0
            )
            actor = _mapping(event.get("actor"))
            decision = _mapping(event.get("decision"))
            rows.entries.append(
                {
                    "idx": index,
                    "entry": entry,
                    "leaf_hash": leaf,
                    "event": str(event["event"]),
                    "subject": actor.get("subject"),
                    "org_id": actor.get("org"),
                    "model_id": event.get("model"),
                    "decision": decision.get("effect"),
                    "country": actor.get("country"),
                    "tier": decision.get("tier"),
                    "time": datetime.fromisoformat(str(event["time"])),
                }
            )
            indices.append(index)
        return indices

    def _locked_head(self, session: Session) -> tuple[TreeState, CompactRange]:
        """The stored tree head, locked, and refused if it contradicts itself or a signature.

        Extending a corrupted head would sign a checkpoint inconsistent with
        an earlier one, which a transparency log must never do.
        """
        state = session.scalars(
            select(TreeState).where(TreeState.id == 1).with_for_update()
        ).one_or_none()
        if state is None:
            raise IntegrityError("the audit tree head is missing; refusing to append")
        try:
            tree = CompactRange.from_bytes(state.size, state.frontier)
        except ValueError:
            raise IntegrityError("the audit tree head is corrupted; refusing to append") from None
        if tree.root() != state.root:
            raise IntegrityError("the audit tree head is corrupted; refusing to append")
        signed = self._checkpoints.verified_latest()
        if signed is not None and (
            signed.size > tree.size or (signed.size == tree.size and signed.root != tree.root())
        ):
            raise IntegrityError(
                f"the audit tree head (size {tree.size}) contradicts the signed checkpoint "
                f"of size {signed.size}; refusing to append"
            )
        return state, tree


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
