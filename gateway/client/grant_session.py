"""One grant, kept alive: file keys opened, storage URLs renewed, the grant itself renewed.

A storage URL lives at most 60 seconds and a grant 15 minutes, while a large
model can take longer to arrive. When a storage URL expires the gateway signs
a new one after re-checking the grant; when the grant expires, a new grant is
requested, which the gateway decides and audits again like any other. A
revoked grant is never renewed.
"""

from __future__ import annotations

import base64
import binascii
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gateway.client.gateway_api import GatewayClient, network_error, public_url, raise_for_problem
from gateway.crypto.envelope import ENVELOPES, V1, GrantBinding, GrantOpener
from gateway.crypto.fileformat import RangeDecryptor, file_context
from gateway.crypto.keyrelease import ClientKeyPair, PrivateKey
from gateway.errors import Gone, IntegrityError, InvalidInput, Unavailable, WeightgateError
from gateway.names import check_file_path


@dataclass(frozen=True)
class GrantedFile:
    path: str
    size: int
    ciphertext_size: int
    sha256: str
    file_version: str
    header: bytes
    decryptor: RangeDecryptor


def open_grant(grant: dict[str, Any], private_key: PrivateKey) -> list[GrantedFile]:
    """Open a grant's file keys and ready each file's decryptor.

    A v2 grant's key is opened once, whatever the number of files. A grant
    saved from a gateway that predates envelopes says none, and is v1.
    """
    try:
        binding = GrantBinding(
            grant_id=str(grant["id"]),
            subject=str(grant["subject"]),
            model=str(grant["model"]),
            revision=str(grant["revision"]),
            expires_at=datetime.fromisoformat(grant["expires_at"]),
        )
        sealed = grant.get("grant_key")
        opener = GrantOpener(
            str(grant.get("envelope", V1)),
            private_key,
            binding,
            None if sealed is None else _b64(sealed),
        )
        return [_open_file(grant, entry, opener) for entry in grant["files"]]
    except (KeyError, TypeError, ValueError):
        raise InvalidInput("not a grant as POST /v1/grants returns it") from None


def _b64(value: object) -> bytes:
    # A field that is not base64 was altered after the gateway wrote it.
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise IntegrityError("the grant holds a key or header that is not base64") from None


def _open_file(grant: dict[str, Any], entry: dict[str, Any], opener: GrantOpener) -> GrantedFile:
    path = check_file_path(entry["path"])
    file_version = str(entry["file_version"])
    data_key = opener.open_file_key(_b64(entry["wrapped_key"]), path, file_version)
    header = _b64(entry["header"])
    context = file_context(
        model=grant["model"],
        revision=grant["revision"],
        path=path,
        file_version=file_version,
    )
    size = int(entry["size"])
    return GrantedFile(
        path,
        size,
        int(entry["ciphertext_size"]),
        str(entry["sha256"]),
        file_version,
        header,
        RangeDecryptor(data_key, context, header, size),
    )


class GrantSession:
    def __init__(self, client: GatewayClient, request: dict[str, Any], keys: ClientKeyPair) -> None:
        self._client = client
        # Announce every envelope this client opens, newest first.
        self._request = {"envelopes": list(ENVELOPES), **request}
        self._keys = keys
        self._lock = threading.Lock()
        self.grant: dict[str, Any] = {}
        self.grants_issued = 0
        self._storage_urls: dict[str, str] = {}
        self._file_urls: dict[str, str] = {}
        self.files: list[GrantedFile] = []

    def start(self) -> dict[str, Any]:
        with self._lock:
            self._request_grant()
        return self.grant

    def _request_grant(self) -> None:
        grant: dict[str, Any] = self._client.call("POST", "/v1/grants", json=self._request)
        where = public_url(self._client.base_url)
        try:
            envelope = grant.get("envelope", V1)
            files = open_grant(grant, self._keys.private)
            urls = {entry["path"]: str(entry["url"]) for entry in grant["files"]}
        except (InvalidInput, AttributeError, KeyError, TypeError, ValueError):
            raise IntegrityError(f"the grant from {where} is not one this client reads") from None
        if envelope not in self._request["envelopes"]:
            raise IntegrityError(f"{where} answered with envelope {envelope!r}, not one asked for")
        if self.files and [(f.path, f.file_version, f.header) for f in files] != [
            (f.path, f.file_version, f.header) for f in self.files
        ]:
            raise IntegrityError("the renewed grant describes different files; start over")
        self.grant = grant
        self.grants_issued += 1
        self.files = files
        self._file_urls = urls
        self._storage_urls.clear()

    def storage_url(self, path: str, *, stale: str | None = None) -> str:
        """The current storage URL for ``path``; a new one if ``stale`` is the one that failed."""
        with self._lock:
            current = self._storage_urls.get(path)
            if current is not None and current != stale:
                return current
            try:
                url = self._redirect(path)
            except Gone as gone:
                if gone.detail.get("state") != "expired":
                    raise Gone(f"the grant for {path} was revoked; ask an admin why") from None
                self._request_grant()  # re-decided and audited by the gateway
                url = self._redirect(path)
            self._storage_urls[path] = url
            return url

    def _redirect(self, path: str) -> str:
        url = self._file_urls[path]
        try:
            response = self._client.http.get(url, follow_redirects=False)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise network_error(f"cannot reach the file URL for {path} at", url, exc) from None
        if response.status_code != 307 or "location" not in response.headers:
            try:
                raise_for_problem(response)
            except WeightgateError as exc:
                # Whoever answered at a URL the grant named, say where it was.
                raise type(exc)(f"{exc.message} from {public_url(url)}", **exc.detail) from None
            raise Unavailable(
                f"{public_url(url)} answered {response.status_code}, not a redirect to storage"
            )
        return response.headers["location"]
