"""The streaming encryptor that publishing pipes into storage: same bytes, read any way."""

from __future__ import annotations

import io
import os

import pytest
from cryptography.cobblestone import Cobblestone256Decryptor
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.crypto.fileformat import EncryptingReader, ciphertext_size, file_context

KEY = bytes(range(32))
CONTEXT = file_context(model="acme/m", revision="r1", path="w.bin", file_version="v1")


@settings(max_examples=60, deadline=None)
@given(
    plaintext=st.binary(max_size=70_000),
    read_size=st.integers(1, 50_000),
    block=st.integers(1, 40_000),
)
def test_any_read_pattern_yields_a_ciphertext_the_library_opens(
    plaintext: bytes, read_size: int, block: int
) -> None:
    reader = EncryptingReader(KEY, CONTEXT, io.BytesIO(plaintext), block=block)
    pieces = []
    while piece := reader.read(read_size):
        pieces.append(piece)
    sealed = b"".join(pieces)
    assert len(sealed) == ciphertext_size(len(plaintext))
    decryptor = Cobblestone256Decryptor(KEY, CONTEXT)
    assert decryptor.update(sealed) + decryptor.finalize() == plaintext
    result = reader.result()
    assert result.plaintext_size == len(plaintext)
    assert result.ciphertext_size == len(sealed)
    assert result.header == sealed[:56]


def test_result_before_the_end_is_refused() -> None:
    reader = EncryptingReader(KEY, CONTEXT, io.BytesIO(os.urandom(100_000)))
    reader.read(10)
    with pytest.raises(ValueError, match="read to the end"):
        reader.result()
