"""The gateway's Prometheus metrics, defined once; labels stay low-cardinality (no ids).

Label values come from small fixed sets (an effect, a tier, an error's code,
a stage), never from a request: no subject, organisation, grant or path.

Under ``serve --workers N`` every worker writes its samples to the directory in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds them up (``exposition``);
each gauge says how its workers' values combine.

See docs/OPERATIONS.md for what each means and how to alert on it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from gateway.errors import IntegrityError, Unavailable, WeightgateError

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
# Request latencies: from a cached decision (milliseconds) to a slow keystore (seconds).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Decisions ----------------------------------------------------------------

DECISIONS = Counter(
    "weightgate_decisions_total",
    "Grant decisions the audit log recorded, by effect and the requester's tier.",
    ["effect", "tier"],  # allow or deny; 1, 2 or 3
)
GRANT_SECONDS = Histogram(
    "weightgate_grant_seconds",
    "Time to answer a grant request, by outcome (ok, or the error's code).",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
REDIRECT_SECONDS = Histogram(
    "weightgate_redirect_seconds",
    "Time to answer a granted file's URL with a storage redirect, by outcome.",
    ["outcome"],
    buckets=LATENCY_BUCKETS,
)
QUOTA_REFUSALS = Counter(
    "weightgate_quota_refusals_total",
    "Grants refused because a quota was used up, by the quota's scope.",
    ["scope"],  # org, subject
)

# Audit log and checkpoints --------------------------------------------------

AUDIT_QUEUE_DEPTH = Gauge(
    "weightgate_audit_append_queue_depth",
    "Appends waiting for the audit writer.",
    multiprocess_mode="livesum",
)
AUDIT_BATCH_SIZE = Histogram(
    "weightgate_audit_append_batch_size",
    "Requests committed together in one audit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
AUDIT_COMMIT_SECONDS = Histogram(
    "weightgate_audit_commit_seconds", "Time to commit one audit batch durably."
)
AUDIT_APPENDS_REFUSED = Counter(
    "weightgate_audit_appends_refused_total",
    "Appends answered 503 without committing, by reason.",
    ["reason"],  # queue_full, timeout, closed, failed
)
CHECKPOINT_LAG = Gauge(
    "weightgate_checkpoint_lag_seconds",
    "Age of the oldest entry no signed checkpoint covers (0 when all are covered).",
    multiprocess_mode="livemax",
)
CHECKPOINT_FAILURES = Counter(
    "weightgate_checkpoint_publish_failures_total",
    "Checkpoint publication rounds that failed, by stage.",
    ["stage"],  # database, anchor, integrity
)
CHECKPOINTS_PUBLISHED = Counter(
    "weightgate_checkpoints_published_total", "Checkpoints this process signed and anchored."
)

# Dependencies ---------------------------------------------------------------

KEYSTORE_ERRORS = Counter(
    "weightgate_keystore_errors_total",
    "Keystore calls that failed, by operation and error code.",
    ["operation", "error"],  # wrap, unwrap, check; unavailable, integrity
)
JWKS_REFRESH_FAILURES = Counter(
    "weightgate_jwks_refresh_failures_total",
    "Fetches of an issuer's JWKS that failed (the last good keys stay in use for a while).",
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "weightgate_webhook_queue_depth",
    "Notifications waiting to be delivered.",
    multiprocess_mode="livesum",
)
WEBHOOK_DROPS = Counter(
    "weightgate_webhook_notifications_dropped_total",
    "Notifications never delivered, by reason.",
    ["reason"],  # queue_full, gave_up
)
READINESS_FAILURES = Counter(
    "weightgate_readiness_failures_total",
    "Readiness checks that found a component down, by component.",
    ["component"],  # database, storage, keys, audit, checkpoints
)


@contextmanager
def timed(histogram: Histogram) -> Iterator[None]:
    """Observe how long the block took, labelled ``ok`` or with the code of the error it raised."""
    began = time.perf_counter()
    outcome = "ok"
    try:
        yield
    except WeightgateError as exc:
        outcome = exc.code  # a class attribute: a small, fixed set
        raise
    except Exception:
        outcome = "error"
        raise
    finally:
        histogram.labels(outcome).observe(time.perf_counter() - began)


@contextmanager
def keystore_call(operation: str) -> Iterator[None]:
    """Count the keystore's refusals (whatever keystore it is) where the gateway calls it."""
    try:
        yield
    except (Unavailable, IntegrityError) as exc:
        KEYSTORE_ERRORS.labels(operation, exc.code).inc()
        raise


def exposition() -> tuple[bytes, str]:
    """The text ``/metrics`` serves: every worker's samples added up, or this process's."""
    directory = os.environ.get(MULTIPROC_DIR)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int, directory: Path) -> None:
    """Forget a worker that ended: its live gauges leave the sums (its counters stay)."""
    multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
