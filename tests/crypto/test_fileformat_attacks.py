"""Property tests: files round-trip, and every tampering on the storage path fails.

The attacker controls the bucket and the network: they can flip bits, cut
the object, reorder chunks, serve another file's chunks or header, and lie
about nothing the signed manifest carries (key, header, plaintext size come
from the grant). Each tampering must end in the one opaque ``IntegrityError``
from ``RangeDecryptor``; the library's streaming decryptor is checked
alongside as the reference behaviour.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import pytest
from cryptography.cobblestone import Cobblestone256Decryptor
from cryptography.exceptions import InvalidTag
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway.crypto.fileformat import (
    CHUNK_SIZE,
    HEADER_SIZE,
    SEALED_CHUNK_SIZE,
    EncryptedFile,
    RangeDecryptor,
    chunk_count,
    ciphertext_size,
    encrypt_stream,
    file_context,
    sealed_span,
)
from gateway.errors import IntegrityError
from tests.crypto import c2sp_reference as ref

FIELDS = {
    "model": "acme/frontier-1",
    "revision": "r7",
    "path": "weights/model-00001-of-00004.safetensors",
    "file_version": "9d5c0a4e2b7f4c1e8a3b6d0f1e2c3a4b",
}
CONTEXT = file_context(**FIELDS)

# Property tests encrypt up to ~100 KB per example; a bounded example count
# keeps the whole module to a few seconds while still covering one-, two- and
# many-chunk files and every chunk-boundary size class.
fast = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])

boundary_sizes = st.sampled_from(
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1]
)
plaintext_sizes = st.one_of(boundary_sizes, st.integers(min_value=0, max_value=100_000))
keys = st.binary(min_size=32, max_size=32)


@dataclass(frozen=True)
class Sealed:
    key: bytes
    context: bytes
    plaintext: bytes
    info: EncryptedFile
    ciphertext: bytes

    @property
    def header(self) -> bytes:
        return self.ciphertext[:HEADER_SIZE]

    @property
    def body(self) -> bytes:
        return self.ciphertext[HEADER_SIZE:]

    @property
    def size(self) -> int:
        return len(self.plaintext)

    def chunk(self, index: int) -> bytes:
        start, end = sealed_span(self.size, index, 1)
        return self.ciphertext[start:end]


def make_plaintext(size: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(size)


def seal(
    key: bytes, plaintext: bytes, *, context: bytes = CONTEXT, buffer_size: int = 1 << 20
) -> Sealed:
    sink = io.BytesIO()
    info = encrypt_stream(key, context, io.BytesIO(plaintext), sink, buffer_size=buffer_size)
    return Sealed(key, context, plaintext, info, sink.getvalue())


@st.composite
def sealed_files(draw: st.DrawFn, min_size: int = 0) -> Sealed:
    size = draw(
        st.one_of(
            boundary_sizes.filter(lambda n: n >= min_size),
            st.integers(min_value=min_size, max_value=100_000),
        )
    )
    seed = draw(st.binary(min_size=1, max_size=16))
    return seal(draw(keys), make_plaintext(size, seed))


def open_whole(
    key: bytes, context: bytes, header: bytes, size: int, body: bytes | memoryview
) -> bytes:
    decryptor = RangeDecryptor(key, context, header, size)
    return b"".join(decryptor.decrypt_chunks(0, body))


def library_open(key: bytes, context: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cobblestone256Decryptor(key, context)
    return decryptor.update(ciphertext) + decryptor.finalize()


# -- round trips -------------------------------------------------------------------------


@fast
@given(
    keys,
    plaintext_sizes,
    st.binary(min_size=1, max_size=16),
    st.one_of(st.integers(1, 64), st.integers(64, 70_000)),
)
def test_encrypted_file_reads_back_exactly_by_every_decryptor(
    key: bytes, size: int, seed: bytes, buffer_size: int
) -> None:
    plaintext = make_plaintext(size, seed)
    sealed = seal(key, plaintext, buffer_size=buffer_size)
    assert sealed.info.plaintext_size == size
    assert sealed.info.ciphertext_size == len(sealed.ciphertext) == ciphertext_size(size)
    assert sealed.info.plaintext_sha256 == hashlib.sha256(plaintext).hexdigest()
    assert sealed.info.header == sealed.header
    assert open_whole(key, CONTEXT, sealed.info.header, size, sealed.body) == plaintext
    assert library_open(key, CONTEXT, sealed.ciphertext) == plaintext
    assert ref.decrypt(key, CONTEXT, sealed.ciphertext) == plaintext


@fast
@given(sealed_files(), st.data())
def test_any_run_of_chunks_decrypts_to_its_plaintext_slice(
    sealed: Sealed, data: st.DataObject
) -> None:
    count = chunk_count(sealed.size)
    first = data.draw(st.integers(0, count - 1), label="first")
    run = data.draw(st.integers(1, count - first), label="count")
    start, end = sealed_span(sealed.size, first, run)
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    pieces = list(decryptor.decrypt_chunks(first, sealed.ciphertext[start:end], count=run))
    streamed = library_open(sealed.key, CONTEXT, sealed.ciphertext)
    expected = streamed[first * CHUNK_SIZE : (first + run) * CHUNK_SIZE]
    assert len(pieces) == run
    assert b"".join(pieces) == expected == sealed.plaintext[first * CHUNK_SIZE :][: len(expected)]


@fast
@given(keys, st.binary(max_size=40_000))
def test_same_key_used_twice_never_reuses_a_nonce(key: bytes, plaintext: bytes) -> None:
    # Re-publishing a file under the same data key must not repeat the AES-GCM
    # key/nonce pair: a fresh salt gives a fresh per-file key and base nonce.
    first, second = seal(key, plaintext), seal(key, plaintext)
    assert first.header[:24] != second.header[:24]
    assert first.body[:16] != second.body[:16]


# -- tampering ---------------------------------------------------------------------------


@fast
@given(sealed_files(), st.data())
def test_bit_flip_anywhere_in_the_file_fails(sealed: Sealed, data: st.DataObject) -> None:
    position = data.draw(st.integers(0, len(sealed.ciphertext) - 1), label="position")
    bit = data.draw(st.integers(0, 7), label="bit")
    flipped = bytearray(sealed.ciphertext)
    flipped[position] ^= 1 << bit
    tampered = bytes(flipped)
    # A flip in the header breaks the key commitment (at construction); a flip
    # in a chunk breaks that chunk's tag. Either way: one opaque error.
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, tampered[:HEADER_SIZE], sealed.size, tampered[HEADER_SIZE:])
    with pytest.raises(InvalidTag):
        library_open(sealed.key, CONTEXT, tampered)


@fast
@given(sealed_files(), st.data())
def test_bit_flip_inside_a_fetched_part_fails(sealed: Sealed, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, chunk_count(sealed.size) - 1), label="chunk")
    chunk = bytearray(sealed.chunk(index))
    position = data.draw(st.integers(0, len(chunk) - 1), label="position")
    chunk[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(index, bytes(chunk), count=1))


@fast
@given(sealed_files(), st.data())
def test_bytes_cut_from_the_file_fail(sealed: Sealed, data: st.DataObject) -> None:
    body = sealed.body
    start = data.draw(st.integers(0, len(body) - 1), label="start")
    end = data.draw(st.integers(start + 1, len(body)), label="end")
    # Cutting whole sealed chunks off the very end leaves a valid run of
    # chunks; that gap is tested separately (test_final_chunk_dropped_...).
    assume(not (end == len(body) and start % SEALED_CHUNK_SIZE == 0))
    cut = body[:start] + body[end:]
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, sealed.header, sealed.size, cut)
    with pytest.raises(InvalidTag):
        library_open(sealed.key, CONTEXT, sealed.header + cut)


@fast
@given(sealed_files(), st.binary(min_size=1, max_size=SEALED_CHUNK_SIZE + 17))
def test_bytes_appended_after_the_final_chunk_fail(sealed: Sealed, extra: bytes) -> None:
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, sealed.header, sealed.size, sealed.body + extra)
    with pytest.raises(InvalidTag):
        library_open(sealed.key, CONTEXT, sealed.ciphertext + extra)


@fast
@given(sealed_files(min_size=CHUNK_SIZE), st.data())
def test_chunk_moved_to_another_index_fails(sealed: Sealed, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, chunk_count(sealed.size) - 2), label="k")
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(k + 1, sealed.chunk(k), count=1))
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(k, sealed.chunk(k + 1), count=1))


@fast
@given(sealed_files(min_size=2 * CHUNK_SIZE), st.data())
def test_two_chunks_swapped_in_place_fail(sealed: Sealed, data: st.DataObject) -> None:
    # Both chunks full, so the swap keeps every length right and only the
    # index-derived nonce can catch it.
    k = data.draw(st.integers(0, sealed.size // CHUNK_SIZE - 2), label="k")
    first, second = sealed.chunk(k), sealed.chunk(k + 1)
    start = k * SEALED_CHUNK_SIZE
    body = sealed.body
    swapped = body[:start] + second + first + body[start + 2 * SEALED_CHUNK_SIZE :]
    assert len(swapped) == len(body)
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, sealed.header, sealed.size, swapped)
    with pytest.raises(InvalidTag):
        library_open(sealed.key, CONTEXT, sealed.header + swapped)


other_contexts = st.sampled_from(sorted(FIELDS)).flatmap(
    lambda field: (
        st.text(min_size=1, max_size=24)
        .filter(lambda value: value != FIELDS[field])
        .map(lambda value: file_context(**{**FIELDS, field: value}))
    )
)


@fast
@given(sealed_files(), other_contexts)
def test_file_served_for_another_model_revision_path_or_version_fails(
    sealed: Sealed, other: bytes
) -> None:
    # Same data key on purpose (worst case): only the context tells the files apart.
    # The commitment fails before a single chunk is opened.
    with pytest.raises(IntegrityError):
        RangeDecryptor(sealed.key, other, sealed.header, sealed.size)
    with pytest.raises(InvalidTag):
        library_open(sealed.key, other, sealed.ciphertext)


@fast
@given(keys, plaintext_sizes, other_contexts, st.data())
def test_header_or_chunk_spliced_from_another_file_fails(
    key: bytes, size: int, other: bytes, data: st.DataObject
) -> None:
    plaintext = make_plaintext(size, b"splice")
    ours = seal(key, plaintext)
    theirs = seal(key, plaintext, context=other)
    # Their header, our context: the commitment does not match.
    with pytest.raises(IntegrityError):
        RangeDecryptor(key, CONTEXT, theirs.header, size)
    # Our header, their chunk at the same index and of the same length: the
    # per-file AEAD key differs, so the tag fails.
    index = data.draw(st.integers(0, chunk_count(size) - 1), label="chunk")
    decryptor = RangeDecryptor(key, CONTEXT, ours.header, size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(index, theirs.chunk(index), count=1))
    with pytest.raises(IntegrityError):
        open_whole(key, CONTEXT, ours.header, size, theirs.body)


@fast
@given(sealed_files(), keys)
def test_wrong_key_fails_before_any_chunk_is_opened(sealed: Sealed, other_key: bytes) -> None:
    if other_key == sealed.key:
        other_key = bytes(b ^ 0xFF for b in other_key)
    with pytest.raises(IntegrityError):
        RangeDecryptor(other_key, CONTEXT, sealed.header, sealed.size)


@fast
@given(sealed_files(), st.integers(-CHUNK_SIZE - 1, 3 * CHUNK_SIZE + 1))
def test_manifest_size_other_than_encrypted_size_fails(sealed: Sealed, delta: int) -> None:
    # The size comes from the signed manifest; a file extended or truncated at
    # publish time (or a manifest that lies) must not decrypt to anything.
    declared = max(0, sealed.size + delta)
    if declared == sealed.size:
        declared = sealed.size + 1
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, sealed.header, declared, sealed.body)


@pytest.mark.parametrize(
    ("key_size", "header_size"), [(16, HEADER_SIZE), (33, HEADER_SIZE), (32, 55), (32, 57)]
)
def test_key_or_header_of_the_wrong_length_fails_closed(key_size: int, header_size: int) -> None:
    sealed = seal(bytes(32), b"weights")
    header = (sealed.header + b"\x00")[:header_size]
    with pytest.raises(IntegrityError):
        RangeDecryptor(bytes(key_size), CONTEXT, header, sealed.size)


def test_chunk_index_past_the_end_fails() -> None:
    sealed = seal(bytes(32), make_plaintext(40000, b"end"))
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(3, sealed.chunk(2), count=1))


def test_decryption_failure_is_one_opaque_error() -> None:
    # Wrong key, wrong context and a bad tag must be indistinguishable to the caller.
    sealed = seal(bytes(32), make_plaintext(20000, b"opaque"))
    other = file_context(**{**FIELDS, "revision": "r8"})
    flipped = bytes([sealed.body[0] ^ 1]) + sealed.body[1:]
    messages = set()
    for key, context, body in (
        (bytes([1]) * 32, CONTEXT, sealed.body),
        (sealed.key, other, sealed.body),
        (sealed.key, CONTEXT, flipped),
    ):
        with pytest.raises(IntegrityError) as caught:
            open_whole(key, context, sealed.header, sealed.size, body)
        messages.add((type(caught.value), str(caught.value), caught.value.code))
    assert len(messages) == 1


def test_final_chunk_dropped_is_caught_by_the_library_stream() -> None:
    sealed = seal(bytes(32), make_plaintext(40000, b"drop"))
    without_final = sealed.ciphertext[: sealed_span(sealed.size, 2, 1)[0]]
    with pytest.raises(InvalidTag):
        library_open(sealed.key, CONTEXT, without_final)
    with pytest.raises(ref.Rejected):
        ref.decrypt(sealed.key, CONTEXT, without_final)


@pytest.mark.parametrize("size", [16384, 40000, 3 * CHUNK_SIZE])
def test_final_chunk_dropped_from_a_whole_file_fails(size: int) -> None:
    # The attacker serves the file without its final short chunk (or, for a
    # multiple of 16 KiB, without its empty final chunk). The declared size says
    # the file has one more chunk; the decryptor must not return a shorter file.
    sealed = seal(bytes(32), make_plaintext(size, b"drop"))
    last = chunk_count(size) - 1
    without_final = sealed.body[: last * SEALED_CHUNK_SIZE]
    with pytest.raises(IntegrityError):
        open_whole(sealed.key, CONTEXT, sealed.header, size, without_final)


def test_storage_answering_with_an_empty_body_fails() -> None:
    sealed = seal(bytes(32), make_plaintext(40000, b"empty"))
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(2, b""))


def test_negative_chunk_index_fails_with_the_opaque_error() -> None:
    sealed = seal(bytes(32), make_plaintext(40000, b"negative"))
    decryptor = RangeDecryptor(sealed.key, CONTEXT, sealed.header, sealed.size)
    with pytest.raises(IntegrityError):
        list(decryptor.decrypt_chunks(-1, sealed.chunk(0)))
