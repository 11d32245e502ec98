"""A second, deliberately separate implementation of C2SP chunked-encryption (Cobblestone-256).

Written from the spec's description, not from ``gateway.crypto.fileformat``:
nothing here imports that module, so a shared mistake (a wrong label, nonce
layout or chunk length) cannot make both sides agree by accident. The tests
check the library, the gateway's ``RangeDecryptor`` and this code against one
another and against the stored vectors.

Spec summary, as this module implements it:

* header = salt (24 bytes, random) || commitment (32 bytes);
* HKDF-Expand-SHA-512(key, info = label || salt || context, 76 bytes)
  = aead key (32) || base nonce (12) || commitment (32),
  label = ``"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM" || 0x00``;
* the plaintext is cut into 16 KiB chunks and a final chunk that is always
  shorter than 16 KiB (empty when the size is a multiple of 16 KiB), which is
  what marks the end of the stream;
* chunk ``i`` is sealed with AES-256-GCM, no associated data, under the nonce
  base nonce XOR ``i`` (``i`` as a 96-bit big-endian integer).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

LABEL = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM" + b"\x00"
SALT_LEN = 24
COMMIT_LEN = 32
HEADER_LEN = SALT_LEN + COMMIT_LEN
PLAIN_CHUNK = 16 * 1024
GCM_TAG = 16
GCM_NONCE = 12
AES_KEY = 32


class Rejected(Exception):
    """The reference implementation refused the input."""


@dataclass(frozen=True)
class Schedule:
    aead_key: bytes
    base_nonce: bytes
    commitment: bytes


def schedule(key: bytes, salt: bytes, context: bytes) -> Schedule:
    if len(key) != AES_KEY or len(salt) != SALT_LEN:
        raise Rejected("bad key or salt length")
    okm = HKDFExpand(hashes.SHA512(), AES_KEY + GCM_NONCE + COMMIT_LEN, LABEL + salt + context)
    out = okm.derive(key)
    return Schedule(
        aead_key=out[:AES_KEY],
        base_nonce=out[AES_KEY : AES_KEY + GCM_NONCE],
        commitment=out[AES_KEY + GCM_NONCE :],
    )


def chunk_nonce(base_nonce: bytes, index: int) -> bytes:
    counter = index.to_bytes(GCM_NONCE, "big")
    return bytes(a ^ b for a, b in zip(base_nonce, counter, strict=True))


def split_plaintext(plaintext: bytes) -> list[bytes]:
    """Full chunks, then one final chunk that is always short (possibly empty)."""
    full = len(plaintext) // PLAIN_CHUNK
    pieces = [plaintext[i * PLAIN_CHUNK : (i + 1) * PLAIN_CHUNK] for i in range(full)]
    pieces.append(plaintext[full * PLAIN_CHUNK :])
    return pieces


def encrypt(key: bytes, context: bytes, plaintext: bytes, salt: bytes) -> bytes:
    """Encrypt with a caller-chosen salt, so a recorded ciphertext can be rebuilt byte for byte."""
    derived = schedule(key, salt, context)
    aead = AESGCM(derived.aead_key)
    sealed = [
        aead.encrypt(chunk_nonce(derived.base_nonce, index), piece, None)
        for index, piece in enumerate(split_plaintext(plaintext))
    ]
    return salt + derived.commitment + b"".join(sealed)


def decrypt(key: bytes, context: bytes, ciphertext: bytes) -> bytes:
    """Decrypt a whole stream; the last sealed chunk must carry a short plaintext."""
    if len(ciphertext) < HEADER_LEN + GCM_TAG:
        raise Rejected("too short")
    salt, commitment = ciphertext[:SALT_LEN], ciphertext[SALT_LEN:HEADER_LEN]
    derived = schedule(key, salt, context)
    if not hmac.compare_digest(derived.commitment, commitment):
        raise Rejected("key commitment mismatch")
    aead = AESGCM(derived.aead_key)
    body = ciphertext[HEADER_LEN:]
    sealed_chunk = PLAIN_CHUNK + GCM_TAG
    out: list[bytes] = []
    index = 0
    position = 0
    while True:
        piece = body[position : position + sealed_chunk]
        is_final = len(piece) < sealed_chunk
        if is_final and len(piece) < GCM_TAG:
            raise Rejected("truncated")
        try:
            out.append(aead.decrypt(chunk_nonce(derived.base_nonce, index), piece, None))
        except InvalidTag:
            raise Rejected("chunk failed to authenticate") from None
        position += len(piece)
        index += 1
        if is_final:
            break
    if position != len(body):
        raise Rejected("trailing data")
    return b"".join(out)


def sealed_length(plaintext_size: int) -> int:
    """Ciphertext length from first principles: header, plaintext, one tag per chunk."""
    chunks = plaintext_size // PLAIN_CHUNK + 1
    return HEADER_LEN + plaintext_size + GCM_TAG * chunks
