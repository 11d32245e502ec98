"""Refused tokens in the audit log without letting a flood of them fill it.

Every refused token used to be its own durable entry, so anyone could write
to the log (and age it) as fast as they could send requests. Now, per
process, the first refusal for a (client address, reason) in each window is
written in full, as before, and the ones after it in the same window are
counted and written as one ``auth.reject.summary`` entry when the window
closes: the reviewer still sees every source and reason, with counts and the
first and last time, and the log grows by at most two entries per source and
reason per window. The counts of a window that had not closed are lost if the
process dies; nothing is granted on a refusal, so nothing else is.

A fixed bound on distinct (address, reason) pairs stops an attacker with many
addresses from growing the table: past it, refusals are counted under one
overflow pair.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.errors import WeightgateError

WINDOW = timedelta(seconds=60)
MAX_SOURCES = 10_000
MAX_REASON_CHARS = 200
OVERFLOW = ("*", "more distinct sources than the gateway tracks")


@dataclass
class _Window:
    opened: datetime
    last: datetime
    suppressed: int = 0


class RejectionLedger:
    def __init__(
        self, audit: AuditLog, clock: Clock, *, window: timedelta = WINDOW, limit: int = MAX_SOURCES
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._window = window
        self._limit = limit
        self._open: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, context: RequestContext, reason: str, details: Mapping[str, Any]) -> None:
        """Audit one refusal: in full if it is the first of its kind in this window."""
        now = self._clock.now()
        key = (context.client_address or "unknown", reason[:MAX_REASON_CHARS])
        with self._lock:
            self._flush_closed(now)
            if key not in self._open and len(self._open) >= self._limit:
                key = OVERFLOW
            window = self._open.get(key)
            if window is not None:
                window.suppressed += 1
                window.last = now
                return
        event = build_event("auth.reject", time=now, context=context, reason=reason, **details)
        self._audit.append([event])
        # Opened only once the full entry is durable: if the log was down, the
        # next refusal of this kind is written in full again.
        with self._lock:
            self._open.setdefault(key, _Window(opened=now, last=now))

    def start(self) -> None:
        """Write closed windows' summaries on a thread of its own, until ``close``."""
        self._thread = threading.Thread(target=self._run, name="rejection-ledger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._window.total_seconds() / 4):
            try:
                self.flush()
            except WeightgateError:
                continue  # the log is down: the counts wait for the next round

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        with contextlib.suppress(WeightgateError):
            self.flush(everything=True)

    def flush(self, *, everything: bool = False) -> None:
        """Write the summaries of closed windows (of all windows at shutdown)."""
        with self._lock:
            self._flush_closed(self._clock.now(), everything=everything)

    def _flush_closed(self, now: datetime, *, everything: bool = False) -> None:
        closed = [
            key
            for key, window in self._open.items()
            if everything or now - window.opened >= self._window
        ]
        summaries = [
            _summary(key, self._open[key], now) for key in closed if self._open[key].suppressed
        ]
        if summaries:
            # Appended under the lock, and forgotten only once durable, so the
            # same refusals are never summarised twice nor lost to an outage.
            self._audit.append(summaries)
        for key in closed:
            del self._open[key]


def _summary(key: tuple[str, str], window: _Window, now: datetime) -> dict[str, Any]:
    address, reason = key
    return build_event(
        "auth.reject.summary",
        time=now,
        context=RequestContext(request_id="summary", client_address=address),
        reason=reason,
        refused=window.suppressed,
        first=window.opened.isoformat(),
        last=window.last.isoformat(),
    )
