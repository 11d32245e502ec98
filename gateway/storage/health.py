"""Whether the blob store is known to be down, so the gateway refuses at once instead of waiting.

A store that hangs or refuses connections used to cost every request that
touched it a full timeout, and grants went on being issued for files nobody
could download. Now every storage call on the request path reports its
outcome to a ``StorageHealth``, and a background ``StorageProbe`` calls the
store's ``check()`` every few seconds. While the store is known down, grants
and file URLs answer 503 without a network call; the first successful call
(usually the probe's) brings it back, with no restart.

``StorageHealth`` decides; it does no I/O and reads time only from its clock.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import BinaryIO

from gateway.clock import Clock
from gateway.errors import Unavailable, WeightgateError
from gateway.storage.interfaces import BlobStore, ListedBlob, StoredObject

log = logging.getLogger(__name__)

# Seconds between probes. A hung store is seen within this plus one check's
# timeout (about 6 s with the S3 request configuration); a store that came back
# is used again within this plus one answered HEAD.
PROBE_INTERVAL_SECONDS = 2.0
# A "down" mark nobody renews lapses after this long, and the next request
# tries the store again. With the probe running, failures renew the mark every
# interval plus one timeout (under 10 s); the lapse is for processes that run
# no probe (the CLI, tests serving without a lifespan), which would otherwise
# refuse for ever after one failure.
DOWN_MARK_LIFETIME = timedelta(seconds=30)
# What a 503 tells the client to wait: about one probe round.
RETRY_AFTER_SECONDS = math.ceil(PROBE_INTERVAL_SECONDS) + 1


@dataclass(frozen=True)
class HealthStatus:
    available: bool
    reason: str | None  # the last failure, while the store is down
    since: datetime | None  # when it was first seen down, while it is


class StorageHealth:
    """Up until a storage call fails; down until one succeeds or the mark lapses."""

    def __init__(
        self,
        clock: Clock,
        *,
        mark_lifetime: timedelta = DOWN_MARK_LIFETIME,
        retry_after: int = RETRY_AFTER_SECONDS,
    ) -> None:
        self._clock = clock
        self._lifetime = mark_lifetime
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._down_since: datetime | None = None
        self._last_failure: datetime | None = None
        self._reason: str | None = None

    @property
    def retry_after(self) -> int:
        return self._retry_after

    def record_failure(self, reason: str) -> bool:
        """Mark the store down (again); True if it was not known to be down before."""
        now = self._clock.now()
        with self._lock:
            newly = self._down_since is None or self._lapsed(now)
            if newly:
                self._down_since = now
            self._last_failure = now
            self._reason = reason
        return newly

    def record_success(self) -> bool:
        """Mark the store up; True if it was known to be down until now."""
        now = self._clock.now()
        with self._lock:
            was_down = self._down_since is not None and not self._lapsed(now)
            self._down_since = self._last_failure = self._reason = None
        return was_down

    def status(self) -> HealthStatus:
        now = self._clock.now()
        with self._lock:
            if self._down_since is None or self._lapsed(now):
                return HealthStatus(available=True, reason=None, since=None)
            return HealthStatus(available=False, reason=self._reason, since=self._down_since)

    def require_available(self) -> None:
        """Raise Unavailable (with a Retry-After) while the store is known to be down."""
        status = self.status()
        if not status.available:
            raise Unavailable(
                f"storage is unavailable: {status.reason}",
                retry_after=self._retry_after,
                public=PUBLIC_DOWN,
            )

    def _lapsed(self, now: datetime) -> bool:
        return self._last_failure is not None and now - self._last_failure > self._lifetime


# What a client is told: the reason names endpoints, buckets and object keys,
# which are for the gateway's log, not for whoever holds a file URL.
PUBLIC_DOWN = "storage is unavailable; nothing was issued"


class MonitoredBlobStore:
    """A BlobStore that reports every call's outcome and refuses redirects while known down.

    Only ``Unavailable`` counts as a failure: a missing object or an expired
    URL is an answer from a store that works.
    """

    def __init__(self, store: BlobStore, health: StorageHealth) -> None:
        self._store = store
        self.health = health

    def put(self, key: str, source: BinaryIO) -> StoredObject:
        try:
            stored = self._store.put(key, source)
        except Unavailable as exc:
            self._failed(exc)
            raise
        self._answered()
        return stored

    def download_url(self, obj: StoredObject, expires_at: datetime) -> str:
        # No network call while the store is known down: a hung store would
        # otherwise hold one worker thread per request for a whole timeout.
        self.health.require_available()
        try:
            url = self._store.download_url(obj, expires_at)
        except Unavailable as exc:
            self._failed(exc)
            raise
        except WeightgateError:
            self._answered()  # the store answered (e.g. no such version)
            raise
        self._answered()
        return url

    def list_blobs(self, prefix: str) -> Iterator[ListedBlob]:
        # Operator maintenance (``gc``), off the request path: no health bookkeeping.
        return self._store.list_blobs(prefix)

    def delete(self, blob: ListedBlob) -> None:
        self._store.delete(blob)

    def check(self) -> None:
        """Check the store itself, whatever is known: this is how it comes back."""
        try:
            self._store.check()
        except Unavailable as exc:
            self._failed(exc)
            raise
        self._answered()

    def _answered(self) -> None:
        if self.health.record_success():
            log.warning("storage is available again; grants and file URLs are served")

    def _failed(self, error: Unavailable) -> None:
        if self.health.record_failure(error.message):
            log.error(
                "storage is unavailable; grants and file URLs answer 503 until it is back: %s",
                error.message,
            )
        error.detail.setdefault("retry_after", self.health.retry_after)


class StorageProbe:
    """Calls ``check()`` on a thread of its own every ``interval`` seconds, until ``close``."""

    def __init__(
        self, store: MonitoredBlobStore, *, interval: float = PROBE_INTERVAL_SECONDS
    ) -> None:
        self._store = store
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def probe(self) -> None:
        """One check now; raises Unavailable if the store is down (recorded either way)."""
        self._store.check()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="storage-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.probe()
            except WeightgateError as exc:
                if not isinstance(exc, Unavailable):
                    self._store.health.record_failure(exc.message)
            except Exception:  # a bug must not silently end probing
                log.exception("storage probe crashed")
            if self._stop.wait(self.interval):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A check in flight against a hung store ends within its own
            # timeouts (about 6 s for S3); the thread is a daemon beyond that.
            self._thread.join(timeout=10)
            self._thread = None
