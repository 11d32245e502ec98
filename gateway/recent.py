"""A lookup remembered for a moment, for data read on every grant and changed rarely.

A change made by this process clears it at once; one made by another replica
is seen when the entry lapses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from gateway.clock import Clock

V = TypeVar("V")
MAX_ENTRIES = 10_000


class RecentCache(Generic[V]):
    def __init__(self, clock: Clock, lifetime: timedelta, *, remember_none: bool = False) -> None:
        self._clock = clock
        self._lifetime = lifetime
        # Remembering "not found" is right for quotas (none set), wrong for a
        # lookup whose absence another replica may be about to fill.
        self._remember_none = remember_none
        self._entries: dict[Hashable, tuple[datetime, V | None]] = {}

    def lookup(self, key: Hashable, load: Callable[[], V | None]) -> V | None:
        now = self._clock.now()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if value is not None or self._remember_none:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now + self._lifetime, value)
        return value

    def forget(self, key: Hashable) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
