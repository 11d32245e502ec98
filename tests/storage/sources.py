"""Sources of ciphertext that fail part way, as an interrupted publish does."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class BreaksAfter(io.RawIOBase):
    """Zero bytes, then ``error`` once ``good`` bytes have been read."""

    def __init__(self, good: int, error: Exception) -> None:
        self._left = good
        self._error = error

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._left <= 0:
            raise self._error
        count = min(len(view), self._left)
        view[:count] = bytes(count)
        self._left -= count
        return count
