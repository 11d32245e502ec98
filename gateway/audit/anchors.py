"""Anchor stores: every signed checkpoint also written somewhere the database cannot reach.

The audit log lives in a database its operator can rewrite: truncate the
entries, recompute every hash and tree-state row, and the database agrees with
itself again. What the operator cannot do is take back a checkpoint already
anchored outside it. ``weightgate audit verify --anchors URL`` checks the log
against every anchored checkpoint, so a log truncated or rewritten below an
anchor is caught.

Two stores: a directory (the existing on-disk layout, ``{size:012d}.txt``,
whose files may carry cosignature lines), and S3 with Object Lock in
COMPLIANCE mode, where no one, root account included, can delete or overwrite
a version until its retention ends. Only the S3 store resists an operator who
controls the host; the directory resists a database-only attacker.

As in ``gateway.storage.s3``, botocore errors stop here and become
``Unavailable``; the client is ``Any`` because boto3 builds it at run time.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from gateway.clock import Clock
from gateway.errors import InvalidInput, Unavailable
from gateway.storage.s3 import make_client, parse_location

DEFAULT_RETENTION_DAYS = 2555  # seven years, a common record-keeping period
# A note with a dozen cosignatures is under 2 KiB. Anything read beyond this
# cap is not a checkpoint; what was read fails verification instead of filling memory.
MAX_NOTE_BYTES = 64 << 10
_NAME = re.compile(r"([0-9]{12,})\.txt")

T = TypeVar("T")


@dataclass(frozen=True)
class AnchoredCheckpoint:
    size: int  # tree size parsed from the file or object name
    note: str  # the note text as stored
    where: str  # a file path, or s3://bucket/key?versionId=...


class AnchorStore(Protocol):
    location: str  # the URL the store was opened from, for messages

    def put(self, size: int, note: str) -> None:
        """Durably store the checkpoint of tree ``size``; raises Unavailable on any failure."""
        ...

    def checkpoints(self) -> Iterator[AnchoredCheckpoint]:
        """Every anchored checkpoint (every S3 version), ascending by size."""
        ...

    def check(self) -> None:
        """Raise Unavailable, naming the location and the fault, unless puts can succeed."""
        ...


def _file_name(size: int) -> str:
    if size < 0:
        raise InvalidInput(f"tree size {size} is negative")
    return f"{size:012d}.txt"


def _decode(data: bytes) -> str:
    # Invalid UTF-8 becomes U+FFFD and fails signature verification, so a
    # garbage version (which nobody can delete) is reported, not fatal to reading.
    return data[:MAX_NOTE_BYTES].decode("utf-8", errors="replace")


class DirectoryAnchors:
    def __init__(self, directory: Path, location: str | None = None) -> None:
        self._dir = directory
        self.location = location or str(directory)

    def put(self, size: int, note: str) -> None:
        target = self._dir / _file_name(size)
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self._dir, prefix=f".{target.name}.", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(note.encode("utf-8"))
                    out.flush()
                    os.fsync(out.fileno())
                Path(temp).replace(target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            # The rename is durable only once the directory entry is on disk too.
            directory = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            message = f"anchor store {self.location}: could not write {target}: {exc}"
            raise Unavailable(message) from None

    def checkpoints(self) -> Iterator[AnchoredCheckpoint]:
        # A missing directory is an error, not an empty store: a mistyped
        # --anchors must not make verification pass against nothing.
        try:
            found = [(int(m[1]), p) for p in self._dir.iterdir() if (m := _NAME.fullmatch(p.name))]
            for size, path in sorted(found):
                with path.open("rb") as source:
                    note = _decode(source.read(MAX_NOTE_BYTES))
                yield AnchoredCheckpoint(size, note, str(path))
        except OSError as exc:
            raise Unavailable(f"anchor store {self.location}: could not read: {exc}") from None

    def check(self) -> None:
        # Writing a file is the only proof of writability: os.access says yes
        # to root on a read-only mount.
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._dir, prefix=".check.", suffix=".part"):
                pass
        except OSError as exc:
            raise Unavailable(f"anchor store {self.location} is not writable: {exc}") from None


class S3Anchors:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        client: Any,
        clock: Clock,
        retention_days: int = DEFAULT_RETENTION_DAYS,
    ) -> None:
        if retention_days < 1:
            raise InvalidInput("anchor retention must be at least one day")
        self._bucket = bucket
        self._keys = f"{prefix}/checkpoints/" if prefix else "checkpoints/"
        self._client = client
        self._clock = clock
        self._retention = timedelta(days=retention_days)
        self.location = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    def put(self, size: int, note: str) -> None:
        # COMPLIANCE on every put, not only a bucket default: S3 refuses the
        # put outright when the bucket has no Object Lock, so no write can
        # succeed without being locked.
        key = self._keys + _file_name(size)
        self._call(
            f"anchor {key}",
            lambda: self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=note.encode("utf-8"),
                ContentType="text/plain; charset=utf-8",
                ChecksumAlgorithm="SHA256",  # Object Lock puts must carry an integrity checksum
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=self._clock.now() + self._retention,
            ),
        )

    def checkpoints(self) -> Iterator[AnchoredCheckpoint]:
        # Versions, not keys: a second put under a key is a second version,
        # and both are anchors. Delete markers are ignored, so they hide nothing.
        listed: list[tuple[int, int, str, str]] = []
        pages = self._call(
            "list anchors",
            lambda: list(
                self._client.get_paginator("list_object_versions").paginate(
                    Bucket=self._bucket, Prefix=self._keys
                )
            ),
        )
        for page in pages:
            for version in page.get("Versions", []):
                key = str(version["Key"])
                if match := _NAME.fullmatch(key.removeprefix(self._keys)):
                    # S3 lists each key's versions newest first: oldest first here.
                    listed.append((int(match[1]), -len(listed), key, str(version["VersionId"])))
        for size, _, key, version_id in sorted(listed):
            where = f"s3://{self._bucket}/{key}?versionId={version_id}"
            yield AnchoredCheckpoint(size, self._read(key, version_id), where)

    def _read(self, key: str, version_id: str) -> str:
        def read() -> bytes:
            answer = self._client.get_object(Bucket=self._bucket, Key=key, VersionId=version_id)
            data: bytes = answer["Body"].read(MAX_NOTE_BYTES)
            answer["Body"].close()
            return data

        return _decode(self._call(f"read {key} version {version_id}", read))

    def check(self) -> None:
        answer = self._call(
            "read the Object Lock configuration",
            lambda: self._client.get_object_lock_configuration(Bucket=self._bucket),
        )
        if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            raise Unavailable(
                f"anchor store {self.location}: Object Lock is not enabled on the bucket, "
                "so anchors could be deleted; create the bucket with Object Lock"
            )

    def _call(self, action: str, operation: Callable[[], T]) -> T:
        try:
            return operation()
        except ClientError as exc:
            # The server's message says what is wrong ("Bucket is missing
            # ObjectLockConfiguration") and names nothing the operator cannot see.
            error = exc.response.get("Error", {})
            detail = f"{error.get('Code', 'unknown')}: {error.get('Message', '')}"
            message = f"anchor store {self.location}: could not {action} ({detail})"
        except (BotoCoreError, Boto3Error) as exc:
            message = f"anchor store {self.location}: could not {action}: {exc}"
        raise Unavailable(message)


def open_anchor_store(
    url: str,
    *,
    clock: Clock,
    s3_endpoint_url: str | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> AnchorStore:
    """``file:///ABSOLUTE/DIR`` or ``s3://BUCKET[/PREFIX]``; anything else is InvalidInput."""
    expected = "expected file:///ABSOLUTE/DIRECTORY or s3://BUCKET[/PREFIX]"
    if url.startswith("s3://"):
        try:
            bucket, prefix = parse_location(url)
        except InvalidInput:
            raise InvalidInput(
                f"anchor store {url!r} is not a valid location: {expected}"
            ) from None
        client = make_client(endpoint_url=s3_endpoint_url)
        return S3Anchors(bucket, prefix, client, clock, retention_days)
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.scheme != "file" or parts.netloc not in {"", "localhost"} or not path.startswith("/"):
        raise InvalidInput(f"anchor store {url!r} is not a valid location: {expected}")
    return DirectoryAnchors(Path(path), location=url)
