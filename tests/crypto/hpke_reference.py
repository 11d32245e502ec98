"""An independent RFC 9180 implementation, base mode, for one suite.

The suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.

Written from the RFC, sharing nothing with ``cryptography``'s HPKE but the
X25519 and AES-GCM primitives. The gateway's sealed keys must open with it,
and it must open what the gateway seals; it also takes a fixed ephemeral key,
which the library does not, so the envelope vectors can be rebuilt byte for
byte.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

_KEM_ID, _KDF_ID, _AEAD_ID = 0x0020, 0x0001, 0x0002
_KEM_SUITE = b"KEM" + _KEM_ID.to_bytes(2, "big")
_HPKE_SUITE = b"HPKE" + b"".join(i.to_bytes(2, "big") for i in (_KEM_ID, _KDF_ID, _AEAD_ID))


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _labeled_extract(suite: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite + label + ikm)


def _labeled_expand(suite: bytes, prk: bytes, label: bytes, context: bytes, length: int) -> bytes:
    labeled = length.to_bytes(2, "big") + b"HPKE-v1" + suite + label + context
    return HKDFExpand(hashes.SHA256(), length, labeled).derive(prk)


def _shared_secret(dh: bytes, enc: bytes, recipient_public: bytes) -> bytes:
    eae_prk = _labeled_extract(_KEM_SUITE, b"", b"eae_prk", dh)
    return _labeled_expand(_KEM_SUITE, eae_prk, b"shared_secret", enc + recipient_public, 32)


def _key_and_nonce(shared_secret: bytes, info: bytes) -> tuple[bytes, bytes]:
    psk_id_hash = _labeled_extract(_HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash  # mode_base
    secret = _labeled_extract(_HPKE_SUITE, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE, secret, b"key", context, 32)
    nonce = _labeled_expand(_HPKE_SUITE, secret, b"base_nonce", context, 12)
    return key, nonce


def open_sealed(sealed: bytes, recipient: X25519PrivateKey, info: bytes) -> bytes:
    """Single-shot open (RFC 9180, section 6.1): ``enc || ciphertext``, empty aad."""
    enc, ciphertext = sealed[:32], sealed[32:]
    dh = recipient.exchange(X25519PublicKey.from_public_bytes(enc))
    public = recipient.public_key().public_bytes_raw()
    key, nonce = _key_and_nonce(_shared_secret(dh, enc, public), info)
    return AESGCM(key).decrypt(nonce, ciphertext, b"")


def seal(
    plaintext: bytes,
    recipient: X25519PublicKey,
    info: bytes,
    ephemeral: X25519PrivateKey | None = None,
) -> bytes:
    """Single-shot seal; ``ephemeral`` fixed only to rebuild a known-answer vector."""
    ephemeral = ephemeral or X25519PrivateKey.generate()
    enc = ephemeral.public_key().public_bytes_raw()
    dh = ephemeral.exchange(recipient)
    key, nonce = _key_and_nonce(_shared_secret(dh, enc, recipient.public_bytes_raw()), info)
    return enc + AESGCM(key).encrypt(nonce, plaintext, b"")
