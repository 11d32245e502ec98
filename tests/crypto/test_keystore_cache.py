"""The data-key cache in front of a keystore: what it saves, and exactly how long it remembers.

The keystore behind it is a real LocalKeystore; a counting wrapper records
how many unwraps reach it. Time is a FixedClock moved by hand.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.clock import FixedClock
from gateway.crypto.data_key_cache import CachedKeystore
from gateway.crypto.keystore import LocalKeystore
from gateway.errors import IntegrityError, Unavailable
from tests.crypto.test_keystore import DATA_KEY, file_identity

LIFETIME = timedelta(seconds=60)


class CountingKeystore(LocalKeystore):
    """A real local keystore that counts the unwraps that reach it."""

    def __init__(self, keys_dir: Path) -> None:
        super().__init__(keys_dir)
        self.unwraps = 0

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        self.unwraps += 1
        return super().unwrap(kek_id, wrapped, context)


@pytest.fixture
def backing(tmp_path: Path) -> CountingKeystore:
    store = CountingKeystore(tmp_path / "keys")
    store.create()
    return store


def cached(
    backing: CountingKeystore,
    clock: FixedClock,
    *,
    lifetime: timedelta = LIFETIME,
    max_entries: int = 100,
) -> CachedKeystore:
    return CachedKeystore(backing, clock=clock, lifetime=lifetime, max_entries=max_entries)


def test_a_files_key_is_unwrapped_once_per_lifetime_not_once_per_grant(
    backing: CountingKeystore, clock: FixedClock
) -> None:
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    for _ in range(5):
        assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    assert backing.unwraps == 1
    clock.advance(LIFETIME)
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    assert backing.unwraps == 2


def test_a_kek_removed_from_the_keystore_stops_working_within_the_cache_lifetime(
    backing: CountingKeystore, clock: FixedClock, tmp_path: Path
) -> None:
    # The bound the local keystore alone gives is "at once"; behind the cache it
    # is "within the lifetime": a key unwrapped just before is served until then.
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    (tmp_path / "keys" / "kek" / "v1.key").unlink()
    clock.advance(LIFETIME - timedelta(microseconds=1))
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    clock.advance(timedelta(microseconds=1))
    with pytest.raises(Unavailable):
        store.unwrap(kek_id, wrapped, file_identity())
    # Readiness never looked at the cache: it saw the missing KEK at once.
    with pytest.raises(Unavailable):
        store.check()


def test_a_lifetime_of_zero_keeps_the_keystores_at_once_bound(
    backing: CountingKeystore, clock: FixedClock, tmp_path: Path
) -> None:
    store = cached(backing, clock, lifetime=timedelta(0))
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    assert backing.unwraps == 2
    (tmp_path / "keys" / "kek" / "v1.key").unlink()
    with pytest.raises(Unavailable):
        store.unwrap(kek_id, wrapped, file_identity())
    assert len(store) == 0


@pytest.mark.parametrize(
    "moved_to",
    [{"model": "acme/frontier-2"}, {"path": "weights/other.safetensors"}, {"file_version": "0"}],
    ids=["model", "path", "file_version"],
)
def test_cached_key_is_not_released_for_a_row_relabelled_as_another_file(
    backing: CountingKeystore, clock: FixedClock, moved_to: dict[str, str]
) -> None:
    # The wrapped blob is the same bytes; only the row's identity differs. The
    # cache must not answer from the original file's entry.
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY
    with pytest.raises(IntegrityError):
        store.unwrap(kek_id, wrapped, file_identity(**moved_to))


def test_cached_key_is_not_released_under_another_kek_id(
    backing: CountingKeystore, clock: FixedClock
) -> None:
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    store.unwrap(kek_id, wrapped, file_identity())
    backing.create()
    with pytest.raises(IntegrityError):
        store.unwrap("local:v2", wrapped, file_identity())


def test_failures_are_never_remembered(
    backing: CountingKeystore, clock: FixedClock, tmp_path: Path
) -> None:
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    kek = tmp_path / "keys" / "kek" / "v1.key"
    away = kek.with_name("v1.away")
    kek.replace(away)
    with pytest.raises(Unavailable):
        store.unwrap(kek_id, wrapped, file_identity())
    away.replace(kek)  # restored: the next grant works, without waiting for anything
    assert store.unwrap(kek_id, wrapped, file_identity()) == DATA_KEY


def test_the_cache_holds_at_most_max_entries_and_drops_the_least_recently_used(
    backing: CountingKeystore, clock: FixedClock
) -> None:
    store = cached(backing, clock, max_entries=3)
    rows = []
    for n in range(4):
        identity = file_identity(path=f"weights/{n}.safetensors")
        rows.append((*store.wrap(DATA_KEY, identity), identity))
    for kek_id, wrapped, identity in rows[:3]:
        store.unwrap(kek_id, wrapped, identity)
    store.unwrap(*rows[0])  # used again: now the most recent
    store.unwrap(*rows[3])  # a fourth entry pushes out the least recent, rows[1]
    assert len(store) == 3
    before = backing.unwraps
    store.unwrap(*rows[0])
    store.unwrap(*rows[2])
    store.unwrap(*rows[3])
    assert backing.unwraps == before
    store.unwrap(*rows[1])
    assert backing.unwraps == before + 1


def test_retiring_through_the_cache_forgets_every_remembered_key(
    backing: CountingKeystore, clock: FixedClock
) -> None:
    store = cached(backing, clock)
    kek_id, wrapped = store.wrap(DATA_KEY, file_identity())
    store.unwrap(kek_id, wrapped, file_identity())
    store.advance()
    store.retire(kek_id)
    assert len(store) == 0
    with pytest.raises(Unavailable):
        store.unwrap(kek_id, wrapped, file_identity())
