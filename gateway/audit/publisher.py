"""Checkpoint publication, off the append path (as in transparency-dev/tessera).

Appends only move the tree head in the database. Once per interval, the one
process that holds the publisher role (``leadership``) looks at the head and,
if the tree grew, proves the new head consistent with the newest signed
checkpoint, signs it, writes it to the anchor store outside the database, and
only then records it in the database. A head that does not extend the last
checkpoint is never signed: the round fails loudly instead.

A failed round (anchor unwritable, database down, an inconsistent head)
publishes nothing, counts in a metric, and makes ``/readyz`` fail until a
round succeeds. Appends carry on meanwhile; their receipts wait.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway import metrics
from gateway.audit import checkpoint, proofs
from gateway.audit.anchors import AnchorStore
from gateway.audit.checkpoint_store import CheckpointStore, StoredCheckpoint
from gateway.audit.leadership import Leadership
from gateway.audit.log import AuditLog
from gateway.clock import Clock, as_utc
from gateway.errors import IntegrityError, Unavailable, WeightgateError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class PublisherStatus:
    leader: bool
    failure: str | None  # why the last round failed, if it did


class CheckpointPublisher:
    def __init__(
        self,
        *,
        log: AuditLog,
        anchors: AnchorStore,
        signer: Ed25519PrivateKey,
        leadership: Leadership,
        clock: Clock,
        interval: float = DEFAULT_INTERVAL_SECONDS,
    ) -> None:
        self._log = log
        self._store: CheckpointStore = log.checkpoints
        self._anchors = anchors
        self._signer = signer
        self._leadership = leadership
        self._clock = clock
        self.interval = interval
        self._status = PublisherStatus(leader=False, failure=None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round = threading.Lock()

    @property
    def status(self) -> PublisherStatus:
        return self._status

    def publish(self) -> StoredCheckpoint | None:
        """One round: sign and anchor the tree head if it grew; the new checkpoint, if any.

        Raises what made the round fail (after recording it in the status).
        """
        with self._round:
            if not self._leadership.hold():
                self._status = PublisherStatus(leader=False, failure=None)
                return None
            try:
                published = self._publish()
            except WeightgateError as exc:
                stage = _stage(exc)
                metrics.CHECKPOINT_FAILURES.labels(stage).inc()
                self._status = PublisherStatus(leader=True, failure=f"{stage}: {exc.message}")
                log.error(  # noqa: TRY400 - the message is the finding; a traceback adds nothing
                    "checkpoint publication failed (%s): %s", stage, exc.message
                )
                raise
            self._status = PublisherStatus(leader=True, failure=None)
            return published

    def _publish(self) -> StoredCheckpoint | None:
        size, root = self._log.tree_state()
        newest = self._store.verified_newest()
        if newest is not None:
            if newest.size > size or (newest.size == size and newest.root != root):
                raise IntegrityError(
                    f"the tree head (size {size}) contradicts the checkpoint signed at size "
                    f"{newest.size}; refusing to sign"
                )
            if newest.size == size:
                metrics.CHECKPOINT_LAG.set(0)
                return None
            if newest.size > 0:
                # The stored subtree hashes must lead from the signed root to the
                # new one; a rewritten history cannot produce such a path.
                path = self._log.consistency_proof(newest.size, size)
                proofs.verify_consistency(newest.size, size, newest.root, root, path)
        elif size == 0:
            return None
        signed = checkpoint.Checkpoint(self._store.origin, size, root)
        note = checkpoint.sign(signed, self._store.origin, self._signer)
        now = self._clock.now()
        # Anchored first: a checkpoint the database shows is always one the
        # anchor store also holds.
        try:
            self._anchors.put(size, note)
        except Unavailable as exc:
            raise Unavailable(
                f"cannot anchor the checkpoint of size {size} at {self._anchors.location}: "
                f"{exc.message}",
                anchor=True,
            ) from exc
        self._store.add(signed, note, now)
        metrics.CHECKPOINTS_PUBLISHED.inc()
        metrics.CHECKPOINT_LAG.set(0)
        return StoredCheckpoint(size, root, note, now)

    def lag(self) -> timedelta:
        """How long the oldest entry no checkpoint covers has waited (zero if none)."""
        size, _ = self._log.tree_state()
        newest = self._store.newest()
        covered = newest.size if newest else 0
        if covered >= size:
            return timedelta(0)
        oldest: datetime | None = self._log.entry_time(covered)
        return max(timedelta(0), self._clock.now() - as_utc(oldest)) if oldest else timedelta(0)

    def start(self) -> None:
        """Publish every ``interval`` seconds on a thread of its own until ``close``."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="checkpoint-publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish()
                metrics.CHECKPOINT_LAG.set(self.lag().total_seconds())
            except WeightgateError:
                continue  # recorded in the status and the metric; try again next round
            except Exception:  # a bug must not silently end publication
                log.exception("checkpoint publisher round crashed")

    def close(self, *, final: bool = False) -> None:
        """Stop; with ``final``, the publisher first signs what was appended before shutdown."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if final and self._status.leader:
            with contextlib.suppress(WeightgateError):  # already logged and counted
                self.publish()
        self._leadership.release()


def _stage(error: WeightgateError) -> str:
    if isinstance(error, IntegrityError):
        return "integrity"
    if isinstance(error, Unavailable) and error.detail.get("anchor"):
        return "anchor"
    return "database"
