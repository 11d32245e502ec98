"""``weightgate fetch``: parallel ranged downloads, decrypted chunk by chunk, verified, renamed.

Memory stays flat whatever the model size: work is cut into parts of a fixed
number of chunks, at most ``workers`` parts are in flight, and each part is
decrypted and written to its place in the output file before the next is read.
A file only appears under its real name once its SHA-256 matches the grant.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from threading import Lock
from typing import Any

import httpx

from gateway.catalog import check_file_path
from gateway.client.gateway_api import GatewayClient, raise_for_problem
from gateway.crypto.fileformat import (
    CHUNK_SIZE,
    RangeDecryptor,
    chunk_count,
    file_context,
    sealed_span,
)
from gateway.crypto.keyrelease import X25519, ClientKeyPair, PrivateKey, grant_info, open_key
from gateway.errors import IntegrityError, InvalidInput, Unavailable

DEFAULT_PART_CHUNKS = 512  # 8 MiB of plaintext per ranged request
PART_SUFFIX = ".weightgate-part"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class FetchedFile:
    path: Path
    size: int
    sha256: str


class _StorageUrl:
    """The short-lived storage URL of one file, renewed through the gateway when it expires."""

    def __init__(self, client: GatewayClient, file_url: str) -> None:
        self._client = client
        self._file_url = file_url
        self._lock = Lock()
        self._url: str | None = None

    def get(self, *, renew: bool = False, stale: str | None = None) -> str:
        with self._lock:
            if self._url is None or (renew and self._url == stale):
                try:
                    response = self._client.http.get(self._file_url, follow_redirects=False)
                except httpx.HTTPError as exc:
                    raise Unavailable(f"cannot reach the gateway: {exc}") from None
                if response.status_code != 307:
                    raise_for_problem(response)
                    raise Unavailable(f"gateway answered {response.status_code}, not a redirect")
                self._url = response.headers["location"]
            return self._url


class _FileJob:
    def __init__(
        self,
        client: GatewayClient,
        grant: dict[str, Any],
        entry: dict[str, Any],
        private_key: PrivateKey,
        out_dir: Path,
    ) -> None:
        self.path = check_file_path(entry["path"])
        self.size = int(entry["size"])
        self.ciphertext_size = int(entry["ciphertext_size"])
        self.sha256 = str(entry["sha256"])
        self.target = out_dir / self.path
        if out_dir.resolve() not in self.target.resolve().parents:
            raise IntegrityError(f"grant names a file outside the output directory: {self.path}")
        self.partial = self.target.with_name(self.target.name + PART_SUFFIX)
        info = grant_info(
            grant_id=grant["id"],
            subject=grant["subject"],
            model=grant["model"],
            revision=grant["revision"],
            path=self.path,
            expires_at=datetime.fromisoformat(grant["expires_at"]),
        )
        data_key = open_key(base64.b64decode(entry["wrapped_key"]), private_key, info)
        context = file_context(
            model=grant["model"],
            revision=grant["revision"],
            path=self.path,
            file_version=entry["file_version"],
        )
        self.decryptor = RangeDecryptor(
            data_key, context, base64.b64decode(entry["header"]), self.size
        )
        self.url = _StorageUrl(client, entry["url"])

    def open_output(self) -> int:
        self.partial.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.ftruncate(fd, self.size)
        return fd


def fetch(
    client: GatewayClient,
    model: str,
    revision: str | None,
    out_dir: Path,
    *,
    workers: int = 8,
    part_chunks: int = DEFAULT_PART_CHUNKS,
    kem: str = X25519,
    on_grant: Callable[[dict[str, Any]], None] | None = None,
    progress: Progress | None = None,
) -> list[FetchedFile]:
    if workers < 1 or part_chunks < 1:
        raise InvalidInput("workers and part size must be positive")
    keys = ClientKeyPair.generate(kem)
    body: dict[str, Any] = {
        "model": model,
        "recipient_key": keys.recipient_key(),
        "recipient_kem": keys.kem,
    }
    if revision:
        body["revision"] = revision
    grant: dict[str, Any] = client.call("POST", "/v1/grants", json=body)
    if on_grant is not None:
        on_grant(grant)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [_FileJob(client, grant, entry, keys.private, out_dir) for entry in grant["files"]]
    descriptors = {job.path: job.open_output() for job in jobs}
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(
                    _fetch_part,
                    client.http,
                    job,
                    descriptors[job.path],
                    first,
                    count=part_chunks,
                    progress=progress,
                )
                for job in jobs
                for first in range(0, chunk_count(job.size), part_chunks)
            ]
            for future in futures:
                future.result()
        return [_finish(job, descriptors[job.path]) for job in jobs]
    finally:
        for fd in descriptors.values():
            os.close(fd)


def _fetch_part(
    http: httpx.Client,
    job: _FileJob,
    fd: int,
    first: int,
    *,
    count: int,
    progress: Progress | None,
) -> None:
    count = min(count, chunk_count(job.size) - first)
    start, end = sealed_span(job.size, first, count)
    sealed = _read_range(http, job, start, end)
    offset = first * CHUNK_SIZE
    for plain in job.decryptor.decrypt_chunks(first, sealed, count=count):
        os.pwrite(fd, plain, offset)
        offset += len(plain)
        if progress is not None:
            progress(len(plain))


def _read_range(http: httpx.Client, job: _FileJob, start: int, end: int) -> bytearray:
    """Read ciphertext ``[start, end)`` into one buffer of exactly that size, never more."""
    url = job.url.get()
    for attempt in range(2):
        try:
            with http.stream("GET", url, headers={"Range": f"bytes={start}-{end - 1}"}) as response:
                if response.status_code in (403, 410) and attempt == 0:
                    # A storage URL lives at most 60 s; the gateway re-checks the grant
                    # and signs a new one, or answers 410 if the grant is over.
                    url = job.url.get(renew=True, stale=url)
                    continue
                whole_file = start == 0 and end == job.ciphertext_size
                if response.status_code != 206 and not (response.status_code == 200 and whole_file):
                    raise Unavailable(
                        f"storage answered {response.status_code} for a range of {job.path}"
                    )
                buffer = bytearray(end - start)
                filled = 0
                for piece in response.iter_bytes():
                    if filled + len(piece) > len(buffer):
                        raise IntegrityError(f"{job.path}: storage sent more bytes than asked")
                    buffer[filled : filled + len(piece)] = piece
                    filled += len(piece)
                if filled != len(buffer):
                    raise IntegrityError(f"{job.path}: storage sent fewer bytes than asked")
                return buffer
        except httpx.HTTPError as exc:
            raise Unavailable(f"download of {job.path} failed: {exc}") from None
    raise Unavailable(f"storage refused a freshly signed URL for {job.path}")


def _finish(job: _FileJob, fd: int) -> FetchedFile:
    digest = hashlib.sha256()
    position = 0
    while position < job.size:
        block = os.pread(fd, min(1 << 20, job.size - position), position)
        if not block:
            break
        digest.update(block)
        position += len(block)
    if digest.hexdigest() != job.sha256:
        raise IntegrityError(f"{job.path}: SHA-256 does not match the grant")
    os.fsync(fd)
    job.partial.replace(job.target)
    return FetchedFile(job.target, job.size, job.sha256)
