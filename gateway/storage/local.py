"""The embedded storage backend: a local directory served by the gateway itself.

Every ``put`` writes a new version (``ROOT/KEY/VERSION``), as a versioned S3
bucket does, so a URL names exactly the bytes that were published. URLs carry
an HMAC over (key, version, expiry), so they work like S3 presigned URLs:
anyone holding one can fetch that version until it expires, which is never
more than 60 seconds after signing, and nobody can forge or extend one
without the gateway's URL key.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import math
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from gateway.clock import Clock
from gateway.errors import Forbidden, Gone, NotFound, Unavailable
from gateway.storage.interfaces import ListedBlob, StoredObject, check_object_key

BLOB_ROUTE = "/v1/blobs/"
MAX_URL_LIFETIME_SECONDS = 60
_VERSION = re.compile(r"^[0-9a-f]{32}$")
_PARTIAL = re.compile(r"^\.([0-9a-f]{32})\.part$")


class LocalBlobStore:
    def __init__(self, root: Path, url_key: bytes, public_url: str, clock: Clock) -> None:
        self._root = root
        self._url_key = url_key
        self._public_url = public_url.rstrip("/")
        self._clock = clock

    def _path(self, key: str, version: str) -> Path:
        if not _VERSION.fullmatch(version):
            raise NotFound("object version not found")
        return self._root / check_object_key(key) / version

    def put(self, key: str, source: BinaryIO) -> StoredObject:
        version = uuid.uuid4().hex
        target = self._path(key, version)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"local storage is not writable: {exc.strerror}") from None
        partial = target.with_name(f".{version}.part")
        try:
            with partial.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
                sink.flush()
                os.fsync(sink.fileno())
            partial.replace(target)
            size = target.stat().st_size
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise Unavailable(f"local storage is not writable: {exc.strerror}") from None
        except BaseException:
            # Interrupted (Ctrl-C) or the source failed: no half-written file stays behind.
            partial.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                target.parent.rmdir()
            raise
        return StoredObject(key, version, size)

    def list_blobs(self, prefix: str) -> Iterator[ListedBlob]:
        """Versions as ``ROOT/KEY/VERSION``; unfinished ones as ``ROOT/KEY/.VERSION.part``."""
        # Walk from the deepest directory the prefix names, so listing one key is cheap.
        start = self._root.joinpath(*prefix.split("/")[:-1])
        for directory, _dirs, names in os.walk(start):
            key = Path(directory).relative_to(self._root).as_posix()
            if not key.startswith(prefix):
                continue
            for name in sorted(names):
                complete = _VERSION.fullmatch(name) is not None
                partial = _PARTIAL.fullmatch(name)
                if not complete and partial is None:
                    continue
                try:
                    stat = (Path(directory) / name).stat()
                except FileNotFoundError:
                    continue  # renamed into place or removed since the directory was read
                except OSError as exc:
                    raise Unavailable(f"local storage is not readable: {exc.strerror}") from None
                yield ListedBlob(
                    key,
                    partial[1] if partial else name,
                    stat.st_size,
                    datetime.fromtimestamp(stat.st_mtime, UTC),
                    complete,
                )

    def delete(self, blob: ListedBlob) -> None:
        target = self._path(blob.key, blob.version)
        if not blob.complete:
            target = target.with_name(f".{blob.version}.part")
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise Unavailable(f"local storage: cannot delete {blob.key}: {exc.strerror}") from None
        # The key's directory goes with its last version; it stays while other
        # versions remain or someone is writing one now.
        with contextlib.suppress(OSError):
            target.parent.rmdir()

    def _signature(self, key: str, version: str, expires: int) -> str:
        message = f"{key}\n{version}\n{expires}".encode()
        return hmac.new(self._url_key, message, hashlib.sha256).hexdigest()

    def download_url(self, obj: StoredObject, expires_at: datetime) -> str:
        check_object_key(obj.key)
        now = self._clock.now().timestamp()
        # Capped here too, not only by the caller: a URL cannot be revoked, so
        # its lifetime is what a revocation may lag by.
        expires = min(math.ceil(expires_at.timestamp()), math.floor(now) + MAX_URL_LIFETIME_SECONDS)
        query = urlencode(
            {
                "v": obj.version,
                "exp": expires,
                "sig": self._signature(obj.key, obj.version, expires),
            }
        )
        return f"{self._public_url}{BLOB_ROUTE}{quote(obj.key)}?{query}"

    def open_signed(self, key: str, version: str, expires: int, signature: str) -> Path:
        """Check a URL this store signed and return the file it names."""
        expected = self._signature(key, version, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise Forbidden("storage URL signature is invalid")
        if self._clock.now().timestamp() >= expires:
            raise Gone("storage URL has expired; ask the gateway for a new one")
        path = self._path(key, version)
        if not path.is_file():
            raise NotFound("object not found")
        return path

    def check(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            if not os.access(self._root, os.R_OK | os.W_OK):
                raise Unavailable(
                    f"local storage {self._root} is not readable and writable",
                    public="storage is unavailable",
                )
        except OSError as exc:
            raise Unavailable(
                f"local storage {self._root}: {exc.strerror}", public="storage is unavailable"
            ) from None
