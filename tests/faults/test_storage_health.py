"""The storage-availability rule on its own: what one failure, one success and time do to it.

Time is a FixedClock moved by hand. The store is a real ``LocalBlobStore``
whose root is broken and repaired on disk: signing its URLs needs no I/O, so
a refused redirect below can only be the tracker's doing.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.errors import Unavailable
from gateway.storage.health import MonitoredBlobStore, StorageHealth, StorageProbe
from gateway.storage.interfaces import StoredObject
from gateway.storage.local import LocalBlobStore
from tests.conftest import START
from tests.scenarios.deployment import wait_until

LIFETIME = timedelta(seconds=30)
OBJECT = StoredObject("objects/a", "0" * 32, 1)


@pytest.fixture
def health(clock: FixedClock) -> StorageHealth:
    return StorageHealth(clock, mark_lifetime=LIFETIME, retry_after=3)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def monitored(root: Path, clock: FixedClock, health: StorageHealth) -> MonitoredBlobStore:
    store = LocalBlobStore(root, b"k" * 32, "http://127.0.0.1:9", clock)
    return MonitoredBlobStore(store, health)


def _break(root: Path) -> None:
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_bytes(b"not a directory")  # the store's root can no longer be created


def _repair(root: Path) -> None:
    root.unlink()


def test_one_failed_storage_call_refuses_grants_with_a_retry_after(
    health: StorageHealth,
) -> None:
    health.require_available()
    assert health.record_failure("S3 bucket wg: could not reach the bucket: timeout")
    assert not health.record_failure("S3 bucket wg: could not reach the bucket: timeout")
    with pytest.raises(Unavailable, match="timeout") as refused:
        health.require_available()
    assert refused.value.detail["retry_after"] == 3
    assert health.status().since == START


def test_store_seen_answering_again_is_trusted_at_once(health: StorageHealth) -> None:
    health.record_failure("down")
    assert health.record_success()
    assert not health.record_success()
    health.require_available()
    assert health.status().reason is None


def test_down_mark_nobody_renews_lapses_so_a_probe_less_process_tries_again(
    health: StorageHealth, clock: FixedClock
) -> None:
    health.record_failure("down")
    clock.advance(LIFETIME)
    with pytest.raises(Unavailable):
        health.require_available()  # a renewal per probe round keeps it down
    clock.advance(timedelta(seconds=1))
    health.require_available()
    # Down again from the next failure, counted from then.
    health.record_failure("still down")
    assert health.status().since == START + LIFETIME + timedelta(seconds=1)


def test_failures_renewed_by_the_probe_keep_the_store_down_past_the_lifetime(
    health: StorageHealth, clock: FixedClock
) -> None:
    health.record_failure("down")
    for _ in range(5):
        clock.advance(LIFETIME / 2)
        health.record_failure("down")
    with pytest.raises(Unavailable):
        health.require_available()
    assert health.status().since == START


def test_redirect_refused_without_touching_a_store_known_down_and_served_once_it_answers(
    monitored: MonitoredBlobStore, root: Path, clock: FixedClock
) -> None:
    expires = clock.now() + timedelta(seconds=60)
    assert monitored.download_url(OBJECT, expires).startswith("http://127.0.0.1:9/v1/blobs/")
    _break(root)
    with pytest.raises(Unavailable) as failed:
        monitored.check()
    assert failed.value.detail["retry_after"] == 3
    # Signing a local URL needs no disk: only the tracker can refuse this one.
    with pytest.raises(Unavailable):
        monitored.download_url(OBJECT, expires)
    _repair(root)
    monitored.check()
    assert monitored.download_url(OBJECT, expires)


def test_probe_thread_brings_a_repaired_store_back_and_stops_on_close(
    monitored: MonitoredBlobStore, root: Path
) -> None:
    _break(root)
    probe = StorageProbe(monitored, interval=0.01)
    probe.start()
    try:
        wait_until(lambda: not monitored.health.status().available, timeout=5)
        _repair(root)
        wait_until(lambda: monitored.health.status().available, timeout=5)
    finally:
        probe.close()
    assert not any(t.name == "storage-probe" for t in threading.enumerate())
