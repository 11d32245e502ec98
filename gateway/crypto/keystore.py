"""Keystores hold the key-encryption keys (KEKs) that wrap every file's data key.

Data keys never rest in the clear: the catalog stores them wrapped, with the
file's identity as associated data, so a wrapped key copied onto another file's
row does not unwrap. KEKs are versioned; new wraps use the newest version and
old versions stay readable, so rotation re-wraps data keys without touching
the weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.canonical import canonical_json
from gateway.crypto.keyfiles import read_secret, write_secret
from gateway.errors import Conflict, IntegrityError, NotFound, Unavailable

_FORMAT_V1 = b"\x01"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEK_SIZE = 32


class Keystore(Protocol):
    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        """Wrap ``data_key`` under the current KEK; returns (kek id, wrapped blob)."""
        ...

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        """Unwrap; raises IntegrityError on any mismatch, Unavailable if the KEK is gone."""
        ...

    def check(self) -> None:
        """Raise Unavailable unless the current KEK can be used."""
        ...

    def current_id(self) -> str:
        """The id of the KEK that new wraps use (raises Unavailable if there is none)."""
        ...

    def advance(self) -> str:
        """Make a fresh KEK current for a rotation, if this keystore makes them; its id."""
        ...

    def known_ids(self) -> list[str]:
        """The KEKs this keystore can list (local: every version; KMS: the current key)."""
        ...

    def holds(self, kek_id: str) -> bool:
        """Whether ``kek_id`` names a KEK this keystore has (retired or deleted ones: no)."""
        ...

    def retire(self, kek_id: str) -> None:
        """Stop ``kek_id`` from unwrapping anything (reversibly, by the operator)."""
        ...


class LocalKeystore:
    """KEKs as 32-byte files ``kek/v<N>.key`` under the keys directory (mode 0600).

    A retired version is moved to ``kek/retired/``: kept, so a backup can be
    restored by moving it back, but never read.
    """

    def __init__(self, keys_dir: Path) -> None:
        self._dir = keys_dir / "kek"
        self._cache: dict[str, tuple[tuple[int, int], bytes]] = {}
        self._paths: dict[str, str] = {}

    def create(self) -> str:
        """Add a new KEK version and make it current; returns its id."""
        version = self._newest_version() + 1
        write_secret(self._dir / f"v{version}.key", AESGCM.generate_key(bit_length=256))
        return f"local:v{version}"

    def advance(self) -> str:
        return self.create()

    def _versions(self) -> list[int]:
        if not self._dir.is_dir():
            return []
        return sorted(int(p.stem[1:]) for p in self._dir.glob("v*.key") if p.stem[1:].isdigit())

    def _newest_version(self) -> int:
        # Retired versions count too: a new version never reuses a retired one's number.
        retired = self._dir / "retired"
        numbers = self._versions() + [
            int(p.stem[1:]) for p in retired.glob("v*.key") if p.stem[1:].isdigit()
        ]
        return max(numbers, default=0)

    def known_ids(self) -> list[str]:
        return [f"local:v{v}" for v in self._versions()]

    def holds(self, kek_id: str) -> bool:
        return kek_id in self.known_ids()

    def retire(self, kek_id: str) -> None:
        if kek_id not in self.known_ids():
            raise NotFound(f"the local keystore holds no KEK {kek_id!r}")
        version = kek_id.removeprefix("local:")
        retired = self._dir / "retired"
        retired.mkdir(mode=0o700, exist_ok=True)
        target = retired / f"{version}.key"
        if target.exists():
            raise Conflict(f"{target} already exists; move it away first")
        (self._dir / f"{version}.key").replace(target)
        self._cache.pop(kek_id, None)

    def _kek(self, kek_id: str) -> bytes:
        scheme, _, version = kek_id.partition(":")
        if scheme != "local" or not version.startswith("v") or not version[1:].isdigit():
            raise IntegrityError("unwrap failed")
        path = self._dir / f"{version}.key"
        # Read once, but stat every time: a KEK removed from the keystore stops
        # working at once, as it would with KMS. (A plain string stat: this runs
        # once for every file of every grant.)
        try:
            info = os.stat(self._paths.setdefault(kek_id, str(path)))  # noqa: PTH116
        except OSError:
            return read_secret(path)  # raises Unavailable with the reason
        stamp = (info.st_mtime_ns, info.st_size)
        cached = self._cache.get(kek_id)
        if cached is None or cached[0] != stamp:
            kek = read_secret(path)  # a directory in its place raises Unavailable too
            if len(kek) != _KEK_SIZE:
                # Truncated, emptied, or half-restored: not a key. Unavailable (503,
                # nothing issued), not a crash, and not cached, so the restored
                # file is read at the next use.
                raise Unavailable(f"KEK file {path} holds {len(kek)} bytes, not a 256-bit key")
            cached = (stamp, kek)
            self._cache[kek_id] = cached
        return cached[1]

    def check(self) -> None:
        self._kek(self.current_id())

    def current_id(self) -> str:
        versions = self._versions()
        if not versions:
            raise Unavailable("the local keystore has no KEK; run `weightgate keys init`")
        return f"local:v{versions[-1]}"

    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        kek_id = self.current_id()
        nonce = os.urandom(_NONCE_SIZE)
        sealed = AESGCM(self._kek(kek_id)).encrypt(nonce, data_key, _aad(kek_id, context))
        return kek_id, _FORMAT_V1 + nonce + sealed

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        if len(wrapped) < 1 + _NONCE_SIZE + _TAG_SIZE or wrapped[:1] != _FORMAT_V1:
            raise IntegrityError("unwrap failed")
        nonce, sealed = wrapped[1 : 1 + _NONCE_SIZE], wrapped[1 + _NONCE_SIZE :]
        try:
            return AESGCM(self._kek(kek_id)).decrypt(nonce, sealed, _aad(kek_id, context))
        except InvalidTag:
            raise IntegrityError("unwrap failed") from None


def _aad(kek_id: str, context: dict[str, str]) -> bytes:
    return b"weightgate.dek.v1\x00" + canonical_json({"kek": kek_id, **context})


class MigratingKeystore:
    """Wraps with ``current``; KEK ids of ``previous``'s scheme still unwrap with ``previous``.

    For a gateway moved from one keystore to another (local to KMS): old data
    keys keep unwrapping until ``keys rotate`` has re-wrapped them under
    ``current``, and the old KEKs can then be retired through it.
    """

    def __init__(self, current: Keystore, previous: Keystore, *, previous_scheme: str) -> None:
        self._current = current
        self._previous = previous
        self._scheme = previous_scheme

    def _for(self, kek_id: str) -> Keystore:
        return self._previous if kek_id.startswith(self._scheme) else self._current

    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        return self._current.wrap(data_key, context)

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        return self._for(kek_id).unwrap(kek_id, wrapped, context)

    def check(self) -> None:
        self._current.check()

    def current_id(self) -> str:
        return self._current.current_id()

    def advance(self) -> str:
        return self._current.advance()

    def known_ids(self) -> list[str]:
        return self._current.known_ids() + self._previous.known_ids()

    def holds(self, kek_id: str) -> bool:
        return self._for(kek_id).holds(kek_id)

    def retire(self, kek_id: str) -> None:
        self._for(kek_id).retire(kek_id)
