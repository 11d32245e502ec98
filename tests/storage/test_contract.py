"""The BlobStore contract, run against every backend: local directory and S3.

Each test drives a store through its public interface and reads the URLs it
signs over real HTTP, as a client following the gateway's redirect would.
"""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
import pytest

from gateway.errors import Gone, InvalidInput, NotFound
from gateway.storage.interfaces import StoredObject
from tests.storage.conftest import Backend
from tests.storage.sources import BreaksAfter

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


def _get(url: str, **headers: str) -> httpx.Response:
    return httpx.get(url, headers=headers, timeout=10)


def _put(backend: Backend, key: str, data: bytes) -> StoredObject:
    return backend.store.put(key, io.BytesIO(data))


def _url(backend: Backend, obj: StoredObject, seconds: float = 30) -> str:
    return backend.store.download_url(obj, backend.clock.now() + timedelta(seconds=seconds))


def test_published_bytes_come_back_through_the_signed_url(backend: Backend) -> None:
    data = os.urandom(100_000)
    obj = _put(backend, "objects/round-trip", data)
    assert obj.key == "objects/round-trip"
    assert obj.size == len(data)
    response = _get(_url(backend, obj))
    assert response.status_code == 200
    assert response.content == data


def test_range_request_returns_exactly_the_asked_bytes(backend: Backend) -> None:
    # The fetch client reads sealed chunks with Range; a URL that signed the
    # Range header (or ignored it) would break parallel downloads.
    data = os.urandom(200_000)
    obj = _put(backend, "objects/ranged", data)
    response = _get(_url(backend, obj), Range="bytes=16456-32855")
    assert response.status_code == 206
    assert response.content == data[16456:32856]


def test_url_lives_as_long_as_asked_when_that_is_under_a_minute(backend: Backend) -> None:
    obj = _put(backend, "objects/lifetime", b"x" * 10)
    assert backend.url_lifetime(_url(backend, obj, seconds=30)) == 30


@pytest.mark.parametrize("asked", [61, 900, 86_400])
def test_url_never_outlives_sixty_seconds_whatever_is_asked(backend: Backend, asked: int) -> None:
    obj = _put(backend, "objects/capped", b"x" * 10)
    assert backend.url_lifetime(_url(backend, obj, seconds=asked)) <= 60


def test_url_for_an_expiry_already_past_serves_nothing(backend: Backend) -> None:
    # Two behaviours meet the contract: refuse to sign (S3 cannot sign a URL
    # that is already dead) or sign one that storage refuses (local).
    obj = _put(backend, "objects/past", b"secret ciphertext")
    try:
        url = _url(backend, obj, seconds=-1)
    except Gone:
        return
    assert _get(url).status_code in (403, 410)


def test_url_replayed_after_its_expiry_is_refused(backend: Backend) -> None:
    obj = _put(backend, "objects/replay", b"secret ciphertext")
    url = _url(backend, obj, seconds=5)
    if backend.name == "s3":
        # moto does not enforce the expiry of presigned URLs, and AWS checks it
        # against real time, which the injected clock cannot move. What can be
        # checked is what was signed: X-Amz-Expires from the injected clock.
        assert backend.url_lifetime(url) == 5
        return
    backend.clock.advance(timedelta(seconds=6))
    assert _get(url).status_code == 410


def test_overwritten_key_keeps_serving_the_bytes_first_published(backend: Backend) -> None:
    # An attacker (or a bug) who can write to the store replaces an object:
    # URLs signed for the published version must not serve the new bytes.
    first = _put(backend, "objects/pinned", b"A" * 1000)
    second = _put(backend, "objects/pinned", b"B" * 1000)
    assert first.version != second.version
    assert _get(_url(backend, first)).content == b"A" * 1000
    assert _get(_url(backend, second)).content == b"B" * 1000


def test_check_passes_on_a_healthy_store(backend: Backend) -> None:
    backend.store.check()


@pytest.mark.parametrize(
    "key", ["../escape", "objects/../../etc/passwd", "/absolute", "objects//x", "objects/", "Ünï"]
)
def test_key_that_could_escape_the_prefix_is_refused(backend: Backend, key: str) -> None:
    with pytest.raises(InvalidInput):
        _put(backend, key, b"x")
    # Signing may refuse the key (S3) or sign a URL that storage then refuses (local).
    try:
        url = _url(backend, StoredObject(key, "v", 1))
    except InvalidInput:
        return
    assert 400 <= _get(url).status_code < 500


class _Ciphertext(io.RawIOBase):
    """A non-seekable stream of unknown length, produced piece by piece as it is read."""

    def __init__(self, size: int, piece: int = 64 << 10) -> None:
        self.digest = hashlib.sha256()
        self._pieces = self._generate(size, piece)
        self._pending = b""

    def _generate(self, size: int, piece: int) -> Iterator[bytes]:
        while size > 0:
            block = os.urandom(min(piece, size))
            self.digest.update(block)
            size -= len(block)
            yield block

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if not self._pending:
            self._pending = next(self._pieces, b"")
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def test_streamed_source_of_unknown_length_uploads_in_bounded_memory(backend: Backend) -> None:
    size = 48 << 20
    source = _Ciphertext(size)
    assert not source.seekable()
    tracemalloc.start()
    try:
        obj = backend.store.put("objects/streamed", io.BufferedReader(source))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert obj.size == size
    # S3 holds about (concurrency + 1.5) parts of 5 MiB here, local a 1 MiB
    # buffer; neither may grow with the object.
    assert peak < size // 2, f"peak {peak:,} bytes for a {size:,}-byte stream"
    stored = hashlib.sha256()
    with httpx.stream("GET", _url(backend, obj), timeout=30) as response:
        assert response.status_code == 200
        for block in response.iter_bytes():
            stored.update(block)
    assert stored.hexdigest() == source.digest.hexdigest()


# Listing and deleting: what ``weightgate gc`` and a failed publish's cleanup rely on.


def test_listing_shows_every_version_under_a_prefix_with_its_size(backend: Backend) -> None:
    first = _put(backend, "objects/listed", b"A" * 1000)
    second = _put(backend, "objects/listed", b"B" * 2500)
    other = _put(backend, "elsewhere/not-listed", b"C" * 10)
    listed = {(b.key, b.version): b for b in backend.store.list_blobs("objects/")}
    assert set(listed) == {(first.key, first.version), (second.key, second.version)}
    assert listed[(first.key, first.version)].size == 1000
    assert listed[(second.key, second.version)].size == 2500
    assert all(b.complete for b in listed.values())
    assert (other.key, other.version) not in listed


def test_deleting_one_version_removes_its_bytes_and_leaves_the_other(backend: Backend) -> None:
    keep = _put(backend, "objects/two-versions", b"keep" * 100)
    drop = _put(backend, "objects/two-versions", b"drop" * 100)
    [listed] = [b for b in backend.store.list_blobs("objects/") if b.version == drop.version]
    backend.store.delete(listed)
    remaining = [(b.key, b.version) for b in backend.store.list_blobs("objects/")]
    assert remaining == [(keep.key, keep.version)]
    assert _get(_url(backend, keep)).content == b"keep" * 100
    # Gone for good, not hidden behind a delete marker: no URL serves the bytes.
    try:
        url = _url(backend, drop)
    except NotFound:
        return
    assert _get(url).status_code == 404


def test_deleting_what_is_already_gone_is_not_an_error(backend: Backend) -> None:
    _put(backend, "objects/twice", b"x" * 10)
    [listed] = backend.store.list_blobs("objects/twice")
    backend.store.delete(listed)
    backend.store.delete(listed)
    assert list(backend.store.list_blobs("objects/")) == []


class _SourceGone(Exception):
    pass


def test_upload_that_fails_half_way_leaves_nothing_listed(backend: Backend) -> None:
    # 12 MiB is past one S3 part: a multipart upload is under way when it fails.
    with pytest.raises(_SourceGone):
        backend.store.put(
            "objects/half",
            io.BufferedReader(BreaksAfter(12 << 20, _SourceGone("the source went away"))),
        )
    assert list(backend.store.list_blobs("objects/")) == []
