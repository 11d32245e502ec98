"""The gateway's Prometheus metrics, defined once; labels stay low-cardinality (no ids).

See docs/OPERATIONS.md for what each means and how to alert on it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AUDIT_QUEUE_DEPTH = Gauge(
    "weightgate_audit_append_queue_depth", "Appends waiting for the audit writer."
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
)
CHECKPOINT_FAILURES = Counter(
    "weightgate_checkpoint_publish_failures_total",
    "Checkpoint publication rounds that failed, by stage.",
    ["stage"],  # database, anchor, integrity
)
CHECKPOINTS_PUBLISHED = Counter(
    "weightgate_checkpoints_published_total", "Checkpoints this process signed and anchored."
)
