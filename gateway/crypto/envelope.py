"""Envelope versions: how a grant carries its file keys to the client.

``v1`` seals every file key with its own HPKE encapsulation to the client's
key. ``v2`` seals one random grant key with HPKE, once per grant, and wraps
each file key with AES-256-GCM under a key derived from it, so a grant for a
model of 30 shards costs one public-key operation instead of 30. Both bind
the same things (grant, requester, expiry, model, revision, file); v2 also
binds the file version. ``docs/FORMAT.md`` gives the byte layouts.

Pure: no I/O; randomness is injectable so the known-answer vectors can be
rebuilt byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.canonical import canonical_json, json_string
from gateway.crypto.keyrelease import PrivateKey, RecipientKey, grant_info, open_key, seal_key
from gateway.errors import IntegrityError, InvalidInput

V1 = "v1"
V2 = "v2"
# What this gateway can issue and this client can open, newest first.
ENVELOPES = (V2, V1)

GRANT_KEY_SIZE = 32
WRAP_FORMAT = 0x02  # the first byte of a v2 wrapped file key
NONCE_SIZE = 12
TAG_SIZE = 16
FILE_KEY_SIZE = 32
WRAPPED_FILE_KEY_SIZE = 1 + NONCE_SIZE + FILE_KEY_SIZE + TAG_SIZE

GRANT_KEY_LABEL = b"weightgate.envelope.v2.grant-key\x00"
WRAP_KEY_LABEL = b"weightgate.envelope.v2.file-key-wrap"
FILE_KEY_LABEL = b"weightgate.envelope.v2.file-key\x00"

Random = Callable[[int], bytes]


def choose_envelope(announced: Sequence[str] | None) -> str:
    """The first version the client announced that we issue; ``v1`` when it announced none.

    A client written before v2 sends no list, and gets exactly what it got before.
    """
    if not announced:
        return V1
    for version in announced:
        if version in ENVELOPES:
            return version
    raise InvalidInput(f"envelopes must name at least one of {list(ENVELOPES)}")


@dataclass(frozen=True)
class GrantBinding:
    """What a grant's keys are bound to: the grant as the response states it."""

    grant_id: str
    subject: str
    model: str
    revision: str
    expires_at: datetime

    def grant_key_info(self) -> bytes:
        """HPKE ``info`` for the v2 grant key: the grant, minus any one file."""
        return GRANT_KEY_LABEL + canonical_json(
            {
                "grant_id": self.grant_id,
                "subject": self.subject,
                "model": self.model,
                "revision": self.revision,
                "expires_at": self.expires_at.isoformat(),
            }
        )

    def file_key_aad(self, path: str, file_version: str) -> bytes:
        """AES-GCM associated data for one v2 wrapped file key: which grant, which file.

        The canonical JSON of {file_version, grant_id, model, path, revision},
        written out in that (sorted) key order: a grant binds one per file, and
        with every value a string, the general encoder's walk is all overhead.
        A property test holds it to ``canonical_json``.
        """
        middle, tail = self._file_key_aad_parts
        aad = f'{{"file_version":{json_string(file_version)}{middle}{json_string(path)}{tail}'
        return FILE_KEY_LABEL + aad.encode()

    @cached_property
    def _file_key_aad_parts(self) -> tuple[str, str]:
        """What every file's AAD shares, around its path: written once a grant."""
        return (
            f',"grant_id":{json_string(self.grant_id)},"model":{json_string(self.model)},"path":',
            f',"revision":{json_string(self.revision)}}}',
        )

    def v1_info(self, path: str) -> bytes:
        return grant_info(
            grant_id=self.grant_id,
            subject=self.subject,
            model=self.model,
            revision=self.revision,
            path=path,
            expires_at=self.expires_at,
        )


def file_wrap_key(grant_key: bytes) -> bytes:
    """The AES-256-GCM key that wraps a v2 grant's file keys.

    The grant key itself only ever feeds HKDF, so a later use of it (another
    label) can never share an AEAD key with this one.
    """
    return HKDF(hashes.SHA256(), 32, salt=None, info=WRAP_KEY_LABEL).derive(grant_key)


class GrantSealer:
    """Seals one grant's file keys to its recipient, in the envelope version chosen for it."""

    def __init__(
        self,
        version: str,
        recipient: RecipientKey,
        binding: GrantBinding,
        *,
        random: Random = os.urandom,
    ) -> None:
        if version not in ENVELOPES:
            raise InvalidInput(f"envelope must be one of {list(ENVELOPES)}")
        self.version = version
        self._recipient = recipient
        self._binding = binding
        self._random = random
        self.sealed_grant_key: bytes | None = None
        if version == V2:
            grant_key = random(GRANT_KEY_SIZE)
            self.sealed_grant_key = seal_key(grant_key, recipient, binding.grant_key_info())
            self._aead = AESGCM(file_wrap_key(grant_key))

    def seal_file_key(self, file_key: bytes, path: str, file_version: str) -> bytes:
        [wrapped] = self.seal_file_keys([(file_key, path, file_version)])
        return wrapped

    def seal_file_keys(self, files: Sequence[tuple[bytes, str, str]]) -> list[bytes]:
        """Each (file key, path, file version) sealed, in order.

        v2 draws every nonce in one call: each draw from the system's random
        source lets go of the GIL, and under a busy thread pool every such
        release queues the thread behind the others, once per file.
        """
        if self.version == V1:
            return [
                seal_key(key, self._recipient, self._binding.v1_info(path))
                for key, path, _ in files
            ]
        if any(len(key) != FILE_KEY_SIZE for key, _, _ in files):
            raise ValueError("a file key is 32 bytes")
        # Random nonces under a key that is fresh for every grant: at most
        # 10,000 files per grant, so a repeat is out of reach.
        nonces = self._random(NONCE_SIZE * len(files))
        sealed = []
        for position, (key, path, file_version) in enumerate(files):
            nonce = nonces[position * NONCE_SIZE : (position + 1) * NONCE_SIZE]
            aad = self._binding.file_key_aad(path, file_version)
            sealed.append(bytes([WRAP_FORMAT]) + nonce + self._aead.encrypt(nonce, key, aad))
        return sealed


class GrantOpener:
    """The client side of :class:`GrantSealer`: opens the grant key once, then each file key."""

    def __init__(
        self,
        version: str,
        private_key: PrivateKey,
        binding: GrantBinding,
        sealed_grant_key: bytes | None = None,
    ) -> None:
        if version not in ENVELOPES:
            raise InvalidInput(
                f"the grant uses envelope {version!r}; this client opens {list(ENVELOPES)}"
            )
        self.version = version
        self._private = private_key
        self._binding = binding
        if version == V2:
            if sealed_grant_key is None:
                raise IntegrityError("a v2 grant without its grant key")
            try:
                grant_key = open_key(sealed_grant_key, private_key, binding.grant_key_info())
            except IntegrityError:
                raise IntegrityError("the grant key does not open with this key") from None
            self._aead = AESGCM(file_wrap_key(grant_key))

    def open_file_key(self, wrapped: bytes, path: str, file_version: str) -> bytes:
        if self.version == V1:
            return open_key(wrapped, self._private, self._binding.v1_info(path))
        # One opaque error whatever was wrong: no oracle on which part failed.
        failure = IntegrityError("the wrapped file key does not open under this grant")
        if len(wrapped) != WRAPPED_FILE_KEY_SIZE or wrapped[0] != WRAP_FORMAT:
            raise failure
        nonce, sealed = wrapped[1 : 1 + NONCE_SIZE], wrapped[1 + NONCE_SIZE :]
        try:
            return self._aead.decrypt(nonce, sealed, self._binding.file_key_aad(path, file_version))
        except InvalidTag:
            raise failure from None
