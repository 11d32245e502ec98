"""The pure layout helpers: where chunk ``k`` sits, how long a file is, what a part fetches.

A wrong offset here makes a ranged download fetch the wrong bytes; the
decryptor would then fail (safe, but an outage), or a part would skip or
overlap another part. The formulas are checked against first principles, not
against each other.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.crypto.fileformat import (
    CHUNK_SIZE,
    HEADER_SIZE,
    SEALED_CHUNK_SIZE,
    TAG_SIZE,
    chunk_count,
    chunk_offset,
    ciphertext_size,
    plain_chunk_size,
    sealed_span,
)

# Sizes up to a few TiB: weights files are large, and the arithmetic must not drift.
sizes = st.one_of(
    st.integers(min_value=0, max_value=1 << 42),
    st.sampled_from([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]),
    st.integers(min_value=1, max_value=1 << 20).map(lambda k: k * CHUNK_SIZE),
)


def test_format_constants_match_cobblestone_256() -> None:
    assert (HEADER_SIZE, CHUNK_SIZE, TAG_SIZE, SEALED_CHUNK_SIZE) == (56, 16384, 16, 16400)


@pytest.mark.parametrize(
    ("size", "chunks"),
    [(0, 1), (1, 1), (16383, 1), (16384, 2), (16385, 2), (32767, 2), (32768, 3), (40000, 3)],
)
def test_final_chunk_is_always_short_so_the_end_cannot_be_faked(size: int, chunks: int) -> None:
    # A file whose size is a multiple of 16 KiB still ends with an (empty) final
    # chunk; without it, a file cut at a chunk boundary would look complete.
    assert chunk_count(size) == chunks
    assert plain_chunk_size(size, chunks - 1) == size % CHUNK_SIZE
    assert plain_chunk_size(size, chunks - 1) < CHUNK_SIZE


@given(sizes)
def test_ciphertext_size_is_header_plus_plaintext_plus_one_tag_per_chunk(size: int) -> None:
    assert ciphertext_size(size) == 56 + size + 16 * (size // 16384 + 1)


@given(sizes)
def test_chunks_add_up_to_the_plaintext(size: int) -> None:
    count = chunk_count(size)
    if count <= 64:
        assert sum(plain_chunk_size(size, i) for i in range(count)) == size
    assert plain_chunk_size(size, 0) == min(size, CHUNK_SIZE)
    assert (count - 1) * CHUNK_SIZE + plain_chunk_size(size, count - 1) == size


@given(st.integers(min_value=0, max_value=1 << 30))
def test_chunk_k_sits_at_a_fixed_offset(index: int) -> None:
    assert chunk_offset(index) == 56 + index * 16400


@pytest.mark.parametrize("size", [0, 1, 16384, 40000])
def test_chunk_index_outside_the_file_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        plain_chunk_size(size, chunk_count(size))
    with pytest.raises(ValueError, match="outside"):
        plain_chunk_size(size, -1)


@pytest.mark.parametrize(
    ("size", "first", "count", "span"),
    [
        (0, 0, 1, (56, 72)),
        (1, 0, 1, (56, 73)),
        (16384, 0, 1, (56, 56 + 16400)),
        (16384, 1, 1, (56 + 16400, 56 + 16400 + 16)),
        (16384, 0, 2, (56, 56 + 16400 + 16)),
        (40000, 1, 1, (56 + 16400, 56 + 2 * 16400)),
        (40000, 2, 1, (56 + 2 * 16400, 40104)),
        (40000, 0, 3, (56, 40104)),
        # A part that would run past the end is clamped to the final chunk.
        (40000, 1, 100, (56 + 16400, 40104)),
    ],
)
def test_sealed_span_boundaries(size: int, first: int, count: int, span: tuple[int, int]) -> None:
    assert sealed_span(size, first, count) == span


@given(sizes, st.integers(min_value=1, max_value=64))
def test_parallel_parts_tile_the_file_without_gap_or_overlap(size: int, part: int) -> None:
    count = chunk_count(size)
    firsts = range(0, count, part)
    if len(firsts) > 256:
        firsts = range(0, 256 * part, part)
    spans = [sealed_span(size, first, part) for first in firsts]
    assert spans[0][0] == HEADER_SIZE
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end == start
    if len(range(0, count, part)) <= 256:
        assert spans[-1][1] == ciphertext_size(size)
    for (start, end), first in zip(spans, firsts, strict=True):
        chunks_in_part = min(part, count - first)
        plain = sum(plain_chunk_size(size, i) for i in range(first, first + chunks_in_part))
        assert end - start == plain + TAG_SIZE * chunks_in_part


@pytest.mark.parametrize(("first", "count"), [(3, 1), (5, 1), (-1, 2), (1, 0)])
def test_part_request_outside_the_file_is_refused(first: int, count: int) -> None:
    # A 40000-byte file has chunks 0..2. A span starting past the end comes back
    # with start > end (an HTTP Range the server may answer with the whole
    # object), a negative start reaches before the header, and count 0 yields
    # an empty range instead of an error.
    try:
        span = sealed_span(40000, first, count)
    except ValueError:
        return
    raise AssertionError(f"sealed_span(40000, {first}, {count}) returned {span}")
