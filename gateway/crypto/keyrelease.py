"""Key release: a key sealed with HPKE (RFC 9180) to the client's ephemeral key.

What is sealed (each file's data key in envelope v1, one grant key in v2)
and what ``info`` binds it to is ``gateway.crypto.envelope``'s business; here
are the suites, the recipient key and the v1 ``info``. A leaked grant is
useless without the client's private key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import mlkem
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import (
    AEAD,
    KDF,
    KEM,
    MLKEM768X25519PrivateKey,
    MLKEM768X25519PublicKey,
    Suite,
)

from gateway.canonical import canonical_json
from gateway.errors import IntegrityError, InvalidInput

X25519 = "x25519"
HYBRID = "mlkem768-x25519"
KEMS = (X25519, HYBRID)
SUITE_NAMES = {
    X25519: "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
    HYBRID: "ML-KEM-768 + X25519 (X-Wing), HKDF-SHA256, AES-256-GCM",
}
_SUITES = {
    X25519: Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
    HYBRID: Suite(KEM.MLKEM768_X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM),
}
_MLKEM768_PUBLIC_SIZE = 1184
RecipientKey = X25519PublicKey | MLKEM768X25519PublicKey
PrivateKey = X25519PrivateKey | MLKEM768X25519PrivateKey


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


def parse_recipient_key(encoded: str, kem: str = X25519) -> RecipientKey:
    """The client's ephemeral public key, base64.

    ``x25519``: the 32-byte key. ``mlkem768-x25519``: the 1184-byte ML-KEM-768
    key followed by the 32-byte X25519 key, so a key released today stays
    sealed against a quantum computer tomorrow.
    """
    if kem not in KEMS:
        raise InvalidInput(f"recipient_kem must be one of {list(KEMS)}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("recipient_key is not valid base64") from None
    expected = 32 if kem == X25519 else _MLKEM768_PUBLIC_SIZE + 32
    if len(raw) != expected:
        raise InvalidInput(f"recipient_key for {kem} must be {expected} bytes, not {len(raw)}")
    if has_small_order(raw[-32:]):
        # A low-order point makes every shared secret zero; refuse it up front
        # instead of failing halfway through building a grant.
        raise InvalidInput("recipient_key is a low-order X25519 point")
    classical = X25519PublicKey.from_public_bytes(raw[-32:])
    if kem == X25519:
        return classical
    try:
        quantum = mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE])
    except ValueError:
        raise InvalidInput("recipient_key holds no valid ML-KEM-768 public key") from None
    return MLKEM768X25519PublicKey(quantum, classical)


# The u-coordinates of Curve25519's points of order 1, 2, 4 and 8, and the
# non-canonical encodings (at or above p = 2^255 - 19) of the same points: every
# encoding whose X25519 output is all zeros for any scalar. The list is
# libsodium's (``has_small_order`` in crypto_scalarmult/curve25519/ref10); the
# tests check that each entry really yields a zero shared secret. X25519
# ignores the top bit of the last byte (RFC 7748, section 5), so it is masked
# before comparing. A set lookup costs well under a microsecond, where the
# former check (generate a key pair, run a Diffie-Hellman) cost most of a seal.
_SMALL_ORDER_POINTS = frozenset(
    bytes.fromhex(point)
    for point in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def has_small_order(x25519_public: bytes) -> bool:
    """Whether a 32-byte X25519 public key is a point every shared secret with is zero."""
    return x25519_public[:31] + bytes([x25519_public[31] & 0x7F]) in _SMALL_ORDER_POINTS


def kem_of(key: RecipientKey | PrivateKey) -> str:
    return X25519 if isinstance(key, X25519PublicKey | X25519PrivateKey) else HYBRID


def seal_key(data_key: bytes, recipient: RecipientKey, info: bytes) -> bytes:
    return _SUITES[kem_of(recipient)].encrypt(data_key, recipient, info=info)


def open_key(sealed: bytes, private_key: PrivateKey, info: bytes) -> bytes:
    try:
        return _SUITES[kem_of(private_key)].decrypt(sealed, private_key, info=info)
    except (InvalidTag, ValueError):
        raise IntegrityError("the wrapped file key does not open with this key") from None


@dataclass(frozen=True)
class ClientKeyPair:
    """A client's ephemeral key pair for one grant, and the bytes it sends as ``recipient_key``."""

    classical: X25519PrivateKey
    quantum: mlkem.MLKEM768PrivateKey | None = None

    @classmethod
    def generate(cls, kem: str = X25519) -> ClientKeyPair:
        if kem not in KEMS:
            raise InvalidInput(f"recipient_kem must be one of {list(KEMS)}")
        quantum = mlkem.MLKEM768PrivateKey.generate() if kem == HYBRID else None
        return cls(X25519PrivateKey.generate(), quantum)

    @property
    def kem(self) -> str:
        return X25519 if self.quantum is None else HYBRID

    @property
    def private(self) -> PrivateKey:
        if self.quantum is None:
            return self.classical
        return MLKEM768X25519PrivateKey(self.quantum, self.classical)

    @property
    def public_bytes(self) -> bytes:
        classical = self.classical.public_key().public_bytes_raw()
        if self.quantum is None:
            return classical
        return self.quantum.public_key().public_bytes_raw() + classical

    def recipient_key(self) -> str:
        return base64.b64encode(self.public_bytes).decode()

    def to_file(self) -> bytes:
        """The private half as JSON, for ``weightgate keygen``; keep it 0600."""
        data = {"kem": self.kem, "x25519": _b64(self.classical.private_bytes_raw())}
        if self.quantum is not None:
            data["mlkem768_seed"] = _b64(self.quantum.private_bytes_raw())
        return json.dumps(data, indent=2).encode()

    @classmethod
    def from_file(cls, raw: bytes) -> ClientKeyPair:
        try:
            data = json.loads(raw)
            classical = X25519PrivateKey.from_private_bytes(base64.b64decode(data["x25519"]))
            seed = data.get("mlkem768_seed")
            quantum = (
                mlkem.MLKEM768PrivateKey.from_seed_bytes(base64.b64decode(seed)) if seed else None
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise InvalidInput(
                "not a weightgate recipient key file (see `weightgate keygen`)"
            ) from None
        pair = cls(classical, quantum)
        if data.get("kem") != pair.kem:
            raise InvalidInput("the recipient key file's kem does not match its keys")
        return pair


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
