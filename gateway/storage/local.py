"""The embedded storage backend: a local directory served by the gateway itself.

URLs carry an HMAC over (object key, version, expiry) so they work like S3
presigned URLs: anyone holding one can fetch the ciphertext until it expires,
and nobody can forge or extend one without the gateway's URL key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlencode

from gateway.errors import Forbidden, Gone, NotFound, Unavailable
from gateway.storage.interfaces import StoredObject, check_object_key

BLOB_ROUTE = "/v1/blobs/"


class LocalBlobStore:
    def __init__(self, root: Path, url_key: bytes, public_url: str) -> None:
        self._root = root
        self._url_key = url_key
        self._public_url = public_url.rstrip("/")

    def path_of(self, key: str) -> Path:
        return self._root / check_object_key(key)

    def put(self, key: str, source: BinaryIO) -> StoredObject:
        target = self.path_of(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            with partial.open("wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
                sink.flush()
                os.fsync(sink.fileno())
            partial.replace(target)
            size = target.stat().st_size
        except OSError as exc:
            raise Unavailable(f"local storage is not writable: {exc.strerror}") from None
        # Objects are written once under a fresh key per file version, so the
        # size identifies the only version there is; S3 gives a real version id.
        return StoredObject(key, f"local-{size}", size)

    def _signature(self, key: str, version: str, expires: int) -> str:
        message = f"{key}\n{version}\n{expires}".encode()
        return hmac.new(self._url_key, message, hashlib.sha256).hexdigest()

    def download_url(self, obj: StoredObject, expires_at: datetime) -> str:
        expires = int(expires_at.timestamp())
        query = urlencode(
            {
                "v": obj.version,
                "exp": expires,
                "sig": self._signature(obj.key, obj.version, expires),
            }
        )
        return f"{self._public_url}{BLOB_ROUTE}{quote(obj.key)}?{query}"

    def open_signed(
        self, key: str, version: str, expires: int, signature: str, now: datetime
    ) -> Path:
        """Check a URL this store signed and return the file it names."""
        expected = self._signature(key, version, expires)
        if not hmac.compare_digest(expected, signature):
            raise Forbidden("storage URL signature is invalid")
        if now.timestamp() >= expires:
            raise Gone("storage URL has expired; ask the gateway for a new one")
        path = self.path_of(key)
        if not path.is_file():
            raise NotFound("object not found")
        if version != f"local-{path.stat().st_size}":
            raise NotFound("object version not found")
        return path

    def check(self) -> None:
        try:
            self._root.mkdir(parents=True, exist_ok=True)
            if not os.access(self._root, os.R_OK | os.W_OK):
                raise Unavailable(f"local storage {self._root} is not readable and writable")
        except OSError as exc:
            raise Unavailable(f"local storage {self._root}: {exc.strerror}") from None
