"""The encrypted file format: C2SP chunked-encryption, Cobblestone-256 instantiation.

A file is a 56-byte header (24-byte salt, 32-byte key commitment) followed by
16 KiB plaintext chunks, each sealed with AES-256-GCM under a nonce derived from
its index. Chunk ``k`` sits at a fixed ciphertext offset, so any range of chunks
can be fetched and decrypted on its own, which is what makes parallel ranged
downloads possible. The library only decrypts whole streams; ``RangeDecryptor``
implements the spec's key schedule for ranges and is checked against the
library's streaming output in the tests.

Spec: c2sp.org/chunked-encryption@v1 with the Cobblestone-256 parameters
(HKDF-Expand-SHA-512, AES-256-GCM), as in ``cryptography.cobblestone`` 50.x.
"""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.cobblestone import Cobblestone256Encryptor
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from gateway.canonical import canonical_json
from gateway.errors import IntegrityError

ALGORITHM = "c2sp.org/chunked-encryption@v1+cobblestone-256"
KEY_SIZE = 32
SALT_SIZE = 24
COMMITMENT_SIZE = 32
HEADER_SIZE = SALT_SIZE + COMMITMENT_SIZE
CHUNK_SIZE = 16384
TAG_SIZE = 16
SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
_LABEL = b"c2sp.org/chunked-encryption@v1+AEAD_AES_256_GCM\x00"
_NONCE_SIZE = 12
# The domain prefix keeps our context strings from ever equalling another
# application's, even if both were handed the same data key.
_CONTEXT_PREFIX = b"weightgate.file.v1\x00"


def file_context(*, model: str, revision: str, path: str, file_version: str) -> bytes:
    """The context string: binds a ciphertext to exactly one file of one model revision.

    A file (or any of its chunks) moved to another path, model, revision or
    file version fails the key commitment before a single chunk is opened.
    """
    return _CONTEXT_PREFIX + canonical_json(
        {"model": model, "revision": revision, "path": path, "file_version": file_version}
    )


def chunk_count(plaintext_size: int) -> int:
    """Chunks in a file; the last is always short (possibly empty), which marks the end."""
    return plaintext_size // CHUNK_SIZE + 1


def ciphertext_size(plaintext_size: int) -> int:
    return HEADER_SIZE + plaintext_size + TAG_SIZE * chunk_count(plaintext_size)


def chunk_offset(index: int) -> int:
    """Where sealed chunk ``index`` starts in the ciphertext."""
    return HEADER_SIZE + index * SEALED_CHUNK_SIZE


def plain_chunk_size(plaintext_size: int, index: int) -> int:
    last = chunk_count(plaintext_size) - 1
    if not 0 <= index <= last:
        raise ValueError(f"chunk {index} is outside a file of {last + 1} chunks")
    return plaintext_size % CHUNK_SIZE if index == last else CHUNK_SIZE


def sealed_span(plaintext_size: int, first_index: int, count: int) -> tuple[int, int]:
    """The ciphertext byte range ``[start, end)`` of ``count`` chunks from ``first_index``.

    ``count`` may run past the end of the file; the span stops at the last chunk.
    """
    if count < 1 or not 0 <= first_index < chunk_count(plaintext_size):
        raise ValueError(f"no chunks {first_index}..+{count} in a file of {plaintext_size} bytes")
    last = min(first_index + count, chunk_count(plaintext_size)) - 1
    return chunk_offset(first_index), chunk_offset(last) + plain_chunk_size(
        plaintext_size, last
    ) + TAG_SIZE


@dataclass(frozen=True)
class EncryptedFile:
    plaintext_size: int
    ciphertext_size: int
    plaintext_sha256: str
    header: bytes


class EncryptingReader(io.RawIOBase):
    """A readable stream of ciphertext, encrypted from ``source`` as it is read.

    Storage backends stream it straight into an upload, so publishing a model
    needs neither a plaintext nor a ciphertext copy on local disk. ``result()``
    gives sizes, hash and header once the stream has been read to the end.
    """

    def __init__(self, key: bytes, context: bytes, source: BinaryIO, *, block: int = 1 << 20):
        super().__init__()
        self._encryptor: Cobblestone256Encryptor | None = Cobblestone256Encryptor(key, context)
        self._source = source
        self._block = block
        self._digest = hashlib.sha256()
        self._pending = memoryview(b"")
        self._plain = 0
        self._sealed = 0
        self._header = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        while not self._pending and self._encryptor is not None:
            self._refill(self._encryptor)
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._sealed += count
        return count

    def _refill(self, encryptor: Cobblestone256Encryptor) -> None:
        block = self._source.read(self._block)
        if block:
            self._digest.update(block)
            self._plain += len(block)
            sealed = encryptor.update(block)
        else:
            sealed = encryptor.finalize()
            self._encryptor = None
        self._header = _take_header(self._header, sealed)
        self._pending = memoryview(sealed)

    def result(self) -> EncryptedFile:
        if self._encryptor is not None or self._pending:
            raise ValueError("the stream has not been read to the end")
        return EncryptedFile(self._plain, self._sealed, self._digest.hexdigest(), self._header)


def encrypt_stream(
    key: bytes, context: bytes, source: BinaryIO, sink: BinaryIO, *, buffer_size: int = 1 << 20
) -> EncryptedFile:
    """Encrypt ``source`` into ``sink`` in bounded memory (the same path publishing streams)."""
    reader = EncryptingReader(key, context, source, block=buffer_size)
    while block := reader.read(buffer_size):
        sink.write(block)
    return reader.result()


def _take_header(header: bytes, sealed: bytes) -> bytes:
    return header if len(header) == HEADER_SIZE else (header + sealed)[:HEADER_SIZE]


class RangeDecryptor:
    """Decrypts any run of whole chunks of one file, given the file's header.

    The header comes from the signed grant, not from the download, so a range
    can be decrypted without first fetching byte 0. The key commitment is
    checked here, before any chunk is opened.
    """

    def __init__(self, key: bytes, context: bytes, header: bytes, plaintext_size: int) -> None:
        if len(key) != KEY_SIZE or len(header) != HEADER_SIZE:
            raise IntegrityError("decryption failed")
        derived = HKDFExpand(
            hashes.SHA512(),
            KEY_SIZE + _NONCE_SIZE + COMMITMENT_SIZE,
            _LABEL + header[:SALT_SIZE] + context,
        ).derive(key)
        if not hmac.compare_digest(derived[KEY_SIZE + _NONCE_SIZE :], header[SALT_SIZE:]):
            raise IntegrityError("decryption failed")
        self._aead = AESGCM(derived[:KEY_SIZE])
        self._base_nonce = int.from_bytes(derived[KEY_SIZE : KEY_SIZE + _NONCE_SIZE], "big")
        self._plaintext_size = plaintext_size
        self._chunks = chunk_count(plaintext_size)

    def decrypt_chunks(
        self,
        first_index: int,
        sealed: bytes | bytearray | memoryview,
        *,
        count: int | None = None,
    ) -> Iterator[bytes]:
        """Yield the plaintext of ``count`` chunks from ``first_index`` (None: to the end).

        ``sealed`` must hold exactly those chunks, each as long as the size the
        manifest promised; anything shorter, longer or out of range fails as
        surely as a bad tag, so a truncated download cannot pass for a short one.
        """
        if count is None:
            count = self._chunks - first_index
        if count < 1 or first_index < 0 or first_index + count > self._chunks:
            raise IntegrityError("decryption failed")
        start, end = sealed_span(self._plaintext_size, first_index, count)
        view = memoryview(sealed)
        if len(view) != end - start:
            raise IntegrityError("decryption failed")
        position = 0
        for index in range(first_index, first_index + count):
            length = plain_chunk_size(self._plaintext_size, index) + TAG_SIZE
            nonce = (self._base_nonce ^ index).to_bytes(_NONCE_SIZE, "big")
            try:
                yield self._aead.decrypt(nonce, view[position : position + length], None)
            except InvalidTag:
                raise IntegrityError("decryption failed") from None
            position += length

    def decrypt_into(
        self,
        first_index: int,
        sealed: bytes | bytearray | memoryview,
        out: bytearray | memoryview,
        *,
        count: int,
    ) -> int:
        """Like ``decrypt_chunks``, but into ``out`` without allocating; returns the bytes written.

        ``out`` must hold the plaintext of the ``count`` chunks. Nothing in it
        may be used if this raises: a later chunk's failure does not undo the
        earlier chunks' plaintext already written there.
        """
        if count < 1 or first_index < 0 or first_index + count > self._chunks:
            raise IntegrityError("decryption failed")
        start, end = sealed_span(self._plaintext_size, first_index, count)
        source, target = memoryview(sealed), memoryview(out)
        if len(source) != end - start:
            raise IntegrityError("decryption failed")
        read = written = 0
        for index in range(first_index, first_index + count):
            plain = plain_chunk_size(self._plaintext_size, index)
            nonce = (self._base_nonce ^ index).to_bytes(_NONCE_SIZE, "big")
            try:
                self._aead.decrypt_into(
                    nonce,
                    source[read : read + plain + TAG_SIZE],
                    None,
                    target[written : written + plain],
                )
            except InvalidTag:
                raise IntegrityError("decryption failed") from None
            read += plain + TAG_SIZE
            written += plain
        return written
