"""Key release: a file's data key sealed with HPKE (RFC 9180) to the client's ephemeral key.

The canonical grant (grant id, subject, model, revision, path, expiry) is
HPKE's ``info``, so a wrapped key lifted from one grant opens under no other,
and a leaked grant is useless without the client's private key.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

from gateway.canonical import canonical_json
from gateway.errors import IntegrityError, InvalidInput

SUITE_NAME = "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM"
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)


def grant_info(
    *, grant_id: str, subject: str, model: str, revision: str, path: str, expires_at: datetime
) -> bytes:
    return b"weightgate.grant.v1\x00" + canonical_json(
        {
            "grant_id": grant_id,
            "subject": subject,
            "model": model,
            "revision": revision,
            "path": path,
            "expires_at": expires_at.isoformat(),
        }
    )


def parse_recipient_key(encoded: str) -> X25519PublicKey:
    """The client's ephemeral X25519 public key: 32 raw bytes, base64."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("recipient_key is not valid base64") from None
    if len(raw) != 32:
        raise InvalidInput("recipient_key must be a 32-byte X25519 public key")
    key = X25519PublicKey.from_public_bytes(raw)
    try:
        # A low-order point makes every shared secret zero; refuse it up front
        # instead of failing halfway through building a grant.
        X25519PrivateKey.generate().exchange(key)
    except ValueError:
        raise InvalidInput("recipient_key is a low-order X25519 point") from None
    return key


def seal_key(data_key: bytes, recipient: X25519PublicKey, info: bytes) -> bytes:
    return _SUITE.encrypt(data_key, recipient, info=info)


def open_key(sealed: bytes, private_key: X25519PrivateKey, info: bytes) -> bytes:
    try:
        return _SUITE.decrypt(sealed, private_key, info=info)
    except InvalidTag:
        raise IntegrityError("the wrapped file key does not open with this key") from None
