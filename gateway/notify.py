"""Webhook notifications: exemption, denial and quota events, signed, retried, never in the way.

A receiver checks ``Weightgate-Signature: v1=<hex>``, an HMAC-SHA256 under the
shared secret over ``<timestamp>.<body>``, refuses a timestamp more than a few
minutes old, and ignores a ``Weightgate-Delivery`` id it has seen: a captured
notification cannot be replayed. Delivery runs on its own thread with
exponential backoff, so a slow or broken receiver never delays a request; only
events the audit log has made durable are sent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from gateway import metrics
from gateway.audit.events import EVENTS
from gateway.clock import Clock

_log = logging.getLogger(__name__)
# The event types the registry marks for notification (decisions admins should see at once).
NOTIFIED = frozenset(name for name, kind in EVENTS.items() if kind.notify)
MAX_QUEUED = 10_000


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class WebhookNotifier:
    def __init__(
        self,
        url: str,
        secret: bytes,
        clock: Clock,
        *,
        attempts: int = 6,
        first_delay: float = 0.5,
        wait: Callable[[float], bool] | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._clock = clock
        self._attempts = attempts
        self._first_delay = first_delay
        self._stop = threading.Event()
        # Waiting on the stop event, not time.sleep: shutting down ends a backoff at once.
        self._wait = wait or self._stop.wait
        self._http = http or httpx.Client(timeout=5.0)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(MAX_QUEUED)
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)
        self._thread.start()

    def __call__(self, entry: Mapping[str, Any]) -> None:
        """Called with every durable audit entry; queues those worth telling."""
        if entry.get("event") not in NOTIFIED:
            return
        try:
            self._queue.put_nowait(dict(entry))
        except queue.Full:
            self.failed += 1
            metrics.WEBHOOK_DROPS.labels("queue_full").inc()
            _log.error("webhook queue full; dropped a %s notification", entry.get("event"))
            return
        metrics.WEBHOOK_QUEUE_DEPTH.set(self._queue.qsize())

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=10)
        self._stop.set()
        self._http.close()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was delivered or given up (tests, shutdown)."""
        done = threading.Event()
        self._queue.put({"__drain__": done})
        return done.wait(timeout)

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            metrics.WEBHOOK_QUEUE_DEPTH.set(self._queue.qsize())
            marker = entry.get("__drain__")
            if isinstance(marker, threading.Event):
                marker.set()
                continue
            self._deliver(entry)

    def _deliver(self, entry: dict[str, Any]) -> None:
        body = json.dumps({"id": uuid.uuid4().hex, "entry": entry}, sort_keys=True).encode()
        delivery = json.loads(body)["id"]
        delay = self._first_delay
        for attempt in range(1, self._attempts + 1):
            timestamp = int(self._clock.now().timestamp())
            headers = {
                "Content-Type": "application/json",
                "Weightgate-Delivery": delivery,
                "Weightgate-Timestamp": str(timestamp),
                "Weightgate-Signature": signature(self._secret, timestamp, body),
            }
            try:
                if self._http.post(self._url, content=body, headers=headers).is_success:
                    self.delivered += 1
                    return
            except httpx.HTTPError as exc:
                _log.warning("webhook attempt %d failed: %s", attempt, exc)
            if attempt < self._attempts and self._wait(delay):
                break  # shutting down
            delay *= 2
        self.failed += 1
        metrics.WEBHOOK_DROPS.labels("gave_up").inc()
        _log.error("webhook gave up on a %s notification", entry.get("event"))
