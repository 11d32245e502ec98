"""Group commit for the audit log: many requests, one transaction.

Requests hand their events (and the state change that must commit with them)
to one writer thread per process. The writer takes whatever is queued, locks
the single tree-state row, and for each request, inside a savepoint, applies
its change and assigns its entries the next contiguous indices. A request
whose change fails is rolled back alone; the others commit together, durably,
and only then learn their indices. Replicas in other processes queue on the
same row lock, so the log stays one linear sequence.

The transaction stores the new tree head and nothing else: checkpoints are
signed later, off this path (``gateway.audit.publisher``), so an append costs
the same whatever the log's age.

Outcomes are honest. The queue is bounded and refuses at once when full. A
request still queued when its caller stops waiting is cancelled and never
commits; one whose batch has started is waited for, since its transaction's
outcome is already being decided (and the database bounds how long that
takes). Closing drains what is queued and refuses what comes after.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.exc import IntegrityError as DatabaseIntegrityError
from sqlalchemy.orm import Session, sessionmaker

from gateway import metrics
from gateway.audit.checkpoint import Checkpoint
from gateway.audit.columns import indexed_columns
from gateway.audit.events import check_event
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.canonical import canonical_json
from gateway.errors import IntegrityError, Unavailable, WeightgateError
from gateway.state.tables import AuditEntry, Base, MerkleNode, SignedCheckpoint, TreeState


@dataclass(frozen=True)
class Insert:
    """Rows that go in with a request's entries, made from their indices.

    The cheap kind of change: no savepoint and no ORM flush per request; the
    batch inserts every request's rows in one statement per table. A change
    that must read or check something in the transaction is a callable.
    """

    table: type[Base]
    rows: Callable[[list[int]], list[dict[str, Any]]]


# A callable change may return fields to add to its request's entries: the
# state it left behind, read under the transaction's locks, so an entry
# records what committed rather than what its caller expected.
Change = Callable[[Session, list[int]], Mapping[str, Any] | None] | Insert

# The writer's own statements, built once.
_HEAD = (
    select(TreeState.size, TreeState.root, TreeState.frontier)
    .where(TreeState.id == 1)
    .with_for_update()
)
_NEWEST_CHECKPOINT = (
    select(SignedCheckpoint.size, SignedCheckpoint.root, SignedCheckpoint.note)
    .order_by(SignedCheckpoint.size.desc())
    .limit(1)
)
# The parameters of an execute become its SET clause.
_MOVE_HEAD = update(TreeState).where(TreeState.id == 1)

NoteVerifier = Callable[[str], Checkpoint]
MAX_BATCH = 256
# Requests that may wait for the writer at once; beyond this a request is
# refused at once (503 with Retry-After) instead of queueing past its timeout.
MAX_QUEUED = 4096
RETRY_AFTER_SECONDS = 1
# Readiness trusts a batch that committed this recently; otherwise it sends an empty one.
HEALTHY_FOR = 5.0  # seconds


@dataclass
class _Rows:
    """The rows a batch will insert, kept until its requests have all been applied."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    inserts: dict[type[Base], list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class _Pending:
    events: Sequence[Mapping[str, Any]]
    change: Change | None
    result: Future[list[int]] = field(default_factory=Future)


class Sequencer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        origin: str,
        verify_note: NoteVerifier,
        max_queued: int = MAX_QUEUED,
        turn: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
    ) -> None:
        self._sessions = sessions
        self._turn = turn
        self._origin = origin
        self._verify_note = verify_note
        # The newest checkpoint whose signature was checked: verified once, not per batch.
        self._verified: tuple[str, Checkpoint] | None = None
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=max_queued)
        self._closed = False
        self._committing = 0
        # When the last batch ended, and why it failed as a whole (None: it committed).
        self._last_batch: tuple[float, BaseException | None] | None = None
        self._thread = threading.Thread(target=self._run, name="audit-sequencer", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        """Requests waiting for a batch (not those in the batch being committed)."""
        return self._queue.qsize()

    @property
    def committing(self) -> int:
        """Requests in the batch being committed now (0 between batches)."""
        return self._committing

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(
        self, events: Sequence[Mapping[str, Any]], change: Change | None, *, timeout: float
    ) -> list[int]:
        """Indices of ``events`` once durable; Unavailable if refused, failed or not begun."""
        return self.submit_for_entries(events, change, timeout=timeout)[0]

    def submit_for_entries(
        self, events: Sequence[Mapping[str, Any]], change: Change | None, *, timeout: float
    ) -> tuple[list[int], Sequence[Mapping[str, Any]]]:
        """As ``submit``, with the events as logged (completed by the change, if it did)."""
        pending = self._enqueue(events, change)
        try:
            return pending.result.result(timeout=timeout), pending.events
        except FutureTimeout:
            _give_up(pending)
        # Its batch has started: the answer is whatever that transaction decides.
        return pending.result.result(), pending.events

    async def submit_awaiting(
        self, events: Sequence[Mapping[str, Any]], change: Change | None, *, timeout: float
    ) -> tuple[list[int], Sequence[Mapping[str, Any]]]:
        """As ``submit_for_entries``, awaited on the event loop: no thread waits for the commit.

        Cancelled (the request's task ended) while still queued, the request is
        dropped and never commits, as one whose caller timed out.
        """
        pending = self._enqueue(events, change)
        try:
            # The wrapper's cancellation cancels ``pending.result``, which only
            # succeeds while the request is still queued.
            return await asyncio.wait_for(asyncio.wrap_future(pending.result), timeout), (
                pending.events
            )
        except TimeoutError:
            _give_up(pending)
        return await asyncio.wrap_future(pending.result), pending.events

    def _enqueue(self, events: Sequence[Mapping[str, Any]], change: Change | None) -> _Pending:
        if self._closed:
            metrics.AUDIT_APPENDS_REFUSED.labels("closed").inc()
            raise Unavailable("the gateway is shutting down; nothing was granted")
        pending = _Pending(events, change)
        try:
            self._queue.put_nowait(pending)
        except queue.Full:
            metrics.AUDIT_APPENDS_REFUSED.labels("queue_full").inc()
            raise Unavailable(
                "the audit log is busy; nothing was granted", retry_after=RETRY_AFTER_SECONDS
            ) from None
        metrics.AUDIT_QUEUE_DEPTH.set(self._queue.qsize())
        return pending

    def check(self, *, timeout: float) -> None:
        """Raise Unavailable unless appends commit: for readiness.

        A batch that committed in the last few seconds says so; otherwise an
        empty request goes through the writer like any other (locking and
        checking the tree head, committing), so a writer that is closed, full,
        stuck or failing is seen, and one that recovered is seen as well.
        """
        if self._closed:
            raise Unavailable("the audit writer is closed (shutting down)")
        if self._queue.full():
            raise Unavailable("the audit append queue is full")
        last = self._last_batch
        if last is not None and last[1] is None and time.monotonic() < last[0] + HEALTHY_FOR:
            return
        try:
            self.submit([], None, timeout=timeout)
        except WeightgateError as exc:
            raise Unavailable(f"audit appends fail: {exc.message}") from exc

    def close(self) -> None:
        """Commit what is queued, refuse what comes after, and stop the writer."""
        self._closed = True
        with contextlib.suppress(queue.Full):  # a stuck writer: what is left is failed below
            self._queue.put(None, timeout=30)
        self._thread.join(timeout=30)
        while True:  # anything the writer could not reach is failed, not left hanging
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                return
            if left is not None and left.result.set_running_or_notify_cancel():
                left.result.set_exception(Unavailable("the gateway shut down before committing"))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            metrics.AUDIT_QUEUE_DEPTH.set(self._queue.qsize())
            # A request whose caller gave up while it was queued is dropped here;
            # from this point on no caller can cancel, so outcomes stay honest.
            started = [p for p in batch if p.result.set_running_or_notify_cancel()]
            if started:
                self._committing = len(started)
                self._commit_isolated(started)
                self._committing = 0
            if stop:
                self._drain()
                return

    def _drain(self) -> None:
        """At shutdown, commit whatever was queued before ``close``."""
        while True:
            try:
                more = self._queue.get_nowait()
            except queue.Empty:
                return
            if more is not None and more.result.set_running_or_notify_cancel():
                self._commit_isolated([more])

    def _commit_isolated(self, batch: list[_Pending]) -> None:
        """Commit the batch; if the transaction itself fails, retry each request alone.

        A failure that no savepoint caught (a row the bulk insert rejects, for
        one) would otherwise fail every request in the batch for one bad one.
        Nothing of the failed transaction committed, so retrying is safe. An
        outage fails the batch at once instead: retrying it request by request
        would only make each caller wait longer for the same answer.
        """
        failure = self._commit(batch)
        self._last_batch = (time.monotonic(), failure)
        if failure is not None and len(batch) > 1 and _one_request_could_cause(failure):
            for pending in batch:
                alone = self._commit([pending])
                if alone is not None:
                    pending.result.set_exception(alone)
            return
        if failure is not None:
            metrics.AUDIT_APPENDS_REFUSED.labels("failed").inc(len(batch))
            for pending in batch:
                pending.result.set_exception(failure)

    def _commit(self, batch: list[_Pending]) -> BaseException | None:
        """One transaction for the batch: sets each request's outcome, or returns why all failed."""
        outcomes: dict[int, list[int] | BaseException] = {}
        rows = _Rows()
        committing = False
        began = time.perf_counter()
        try:
            with self._turn(), self._sessions.begin() as session:
                connection = session.connection()
                tree = self._locked_head(connection)
                for position, pending in enumerate(batch):
                    outcomes[position] = self._apply(session, tree, rows, pending)
                # The batch's entries, nodes and rows go in as one bulk insert each.
                if rows.entries:
                    connection.execute(insert(AuditEntry), rows.entries)
                if rows.nodes:
                    connection.execute(insert(MerkleNode), rows.nodes)
                for table, values in rows.inserts.items():
                    connection.execute(insert(table), values)
                connection.execute(
                    _MOVE_HEAD,
                    {"size": tree.size, "root": tree.root(), "frontier": tree.to_bytes()},
                )
                committing = True
        except WeightgateError as exc:
            return exc
        except (SQLAlchemyError, OSError) as exc:
            # A connection lost during COMMIT leaves the outcome in doubt: the
            # server may have committed. Look before answering, so that no
            # caller hears 503 for entries that are in the log.
            if not (committing and self._landed(rows)):
                failure = Unavailable("the audit log cannot be written; nothing was granted")
                failure.__cause__ = exc
                return failure
        except Exception as exc:
            return exc
        metrics.AUDIT_COMMIT_SECONDS.observe(time.perf_counter() - began)
        metrics.AUDIT_BATCH_SIZE.observe(len(batch))
        for position, pending in enumerate(batch):
            outcome = outcomes[position]
            if isinstance(outcome, BaseException):
                pending.result.set_exception(outcome)
            else:
                pending.result.set_result(outcome)
        return None

    def _landed(self, rows: _Rows) -> bool:
        """Whether the batch's last entry is stored, byte for byte (False if unreadable)."""
        if not rows.entries:
            return False
        last = rows.entries[-1]
        try:
            with self._sessions() as session:
                stored = session.scalar(
                    select(AuditEntry.leaf_hash).where(AuditEntry.idx == last["idx"])
                )
        except SQLAlchemyError:
            return False
        return stored is not None and bytes(stored) == last["leaf_hash"]

    def _apply(
        self, session: Session, tree: CompactRange, rows: _Rows, pending: _Pending
    ) -> list[int] | BaseException:
        """One request: its entries and its change together, or neither.

        A change runs in a savepoint so that its failure undoes it alone;
        entries without a change only need their rows dropped from the batch.
        """
        if pending.change is None:
            return self._sequence(tree, rows, pending.events)
        if isinstance(pending.change, Insert):
            indices = self._sequence(tree, rows, pending.events)
            made = pending.change.rows(indices)
            rows.inserts.setdefault(pending.change.table, []).extend(made)
            return indices
        snapshot = CompactRange.from_bytes(tree.size, tree.to_bytes())
        marks = len(rows.entries), len(rows.nodes)
        savepoint = session.begin_nested()
        try:
            # The change runs first, on the indices its entries will take, so
            # that what it returns can complete them before they are hashed.
            reserved = list(range(tree.size, tree.size + len(pending.events)))
            completion = pending.change(session, reserved)
            if completion:
                pending.events = [_completed(event, completion) for event in pending.events]
            indices = self._sequence(tree, rows, pending.events)
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
            rows.entries.append(
                {"idx": index, "entry": entry, "leaf_hash": leaf, **indexed_columns(event)}
            )
            indices.append(index)
        return indices

    def _locked_head(self, connection: Connection) -> CompactRange:
        """The stored tree head, locked, and refused if it contradicts itself or a signature.

        Extending a corrupted head would sign a checkpoint inconsistent with
        an earlier one, which a transparency log must never do. Plain Core
        statements: this runs once per batch while every request waits.
        """
        state = connection.execute(_HEAD).one_or_none()
        if state is None:
            raise IntegrityError("the audit tree head is missing; refusing to append")
        size, root, frontier = state
        try:
            tree = CompactRange.from_bytes(size, frontier)
        except ValueError:
            raise IntegrityError("the audit tree head is corrupted; refusing to append") from None
        if tree.root() != root:
            raise IntegrityError("the audit tree head is corrupted; refusing to append")
        newest = connection.execute(_NEWEST_CHECKPOINT).one_or_none()
        if newest is not None:
            signed = self._verified_checkpoint(*newest)
            if signed.size > tree.size or (signed.size == tree.size and signed.root != tree.root()):
                raise IntegrityError(
                    f"the audit tree head (size {tree.size}) contradicts the signed checkpoint "
                    f"of size {signed.size}; refusing to append"
                )
        return tree

    def _verified_checkpoint(self, size: int, root: bytes, note: str) -> Checkpoint:
        """The row's checkpoint, its signature checked once per new checkpoint (not per batch)."""
        if self._verified is not None and self._verified[0] == note:
            return self._verified[1]
        signed = self._verify_note(note)
        if signed.size != size or signed.root != root:
            raise IntegrityError(f"the checkpoint row of size {size} does not match its note")
        self._verified = (note, signed)
        return signed


def _give_up(pending: _Pending) -> None:
    """Its caller stopped waiting: refuse it if still queued (it never commits), else return."""
    if pending.result.cancel():
        metrics.AUDIT_APPENDS_REFUSED.labels("timeout").inc()
        raise Unavailable(
            "the audit log did not confirm in time; nothing was granted",
            retry_after=RETRY_AFTER_SECONDS,
        ) from None


def _completed(event: Mapping[str, Any], completion: Mapping[str, Any]) -> Mapping[str, Any]:
    """The event with what its change returned, still of the shape its type declares."""
    done = {**event, **completion}
    check_event(done)
    return done


def _one_request_could_cause(failure: BaseException) -> bool:
    """Whether a batch's failure may come from one request's data rather than an outage."""
    if isinstance(failure, WeightgateError):
        # Rows the database refused (too long, a broken constraint) are data;
        # a lost connection, a lock timeout or a bad tree head are not.
        return isinstance(failure.__cause__, DataError | DatabaseIntegrityError)
    return True  # a request whose event cannot even be sequenced
