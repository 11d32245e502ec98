"""Unwrapped data keys remembered for a short while, in front of any keystore.

A grant unwraps one data key per file. With KMS that is one ``Decrypt`` per
file per grant: a network round trip, a request against the account's KMS
quota, and a charge, which together cost more than the rest of a grant. So
the gateway remembers an unwrapped key for ``lifetime`` (at most
``max_entries`` keys, least recently used out first), keyed by everything the
unwrap depended on: the KEK id, the wrapped blob and the file's context. A
row whose wrap or identity changes (a rotation re-wraps it) is a different
key here, so nothing stale is ever served for it.

What it costs, stated where it is decided (see ``keys/README.md``):

* Someone who can read the gateway's memory gets the data keys of the files
  granted in the last ``lifetime``, which is no more than a running gateway
  can unwrap on demand anyway.
* A KEK withdrawn from the keystore (a key file removed, a KMS key disabled,
  the gateway's KMS permission revoked) stops releasing keys already cached
  within ``lifetime``, not at once. Nothing new is unwrapped meanwhile.

A lifetime of zero turns the cache off. ``check`` and ``wrap`` always go to the
keystore, so readiness still reports a keystore that is down.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta

from gateway.clock import Clock
from gateway.crypto.keystore import Keystore

DEFAULT_MAX_ENTRIES = 10_000

_Key = tuple[str, bytes, tuple[tuple[str, str], ...]]


class CachedKeystore:
    """A Keystore whose unwraps are remembered for ``lifetime``; everything else passes through."""

    def __init__(
        self,
        backing: Keystore,
        *,
        clock: Clock,
        lifetime: timedelta,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.backing = backing
        self._clock = clock
        self._lifetime = lifetime
        self._max_entries = max_entries
        self._entries: OrderedDict[_Key, tuple[datetime, bytes]] = OrderedDict()
        # Grants run on many threads; an OrderedDict's move_to_end is not atomic with a read.
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def unwrap(self, kek_id: str, wrapped: bytes, context: dict[str, str]) -> bytes:
        [data_key] = self.unwrap_many([(kek_id, wrapped, context)])
        return data_key

    def unwrap_many(self, items: Sequence[tuple[str, bytes, dict[str, str]]]) -> list[bytes]:
        """Each (KEK id, wrapped key, context) unwrapped, in order: a grant's files at once.

        The lock is taken twice a grant, not twice a file: a contended lock
        lets go of the GIL, and a busy thread pool then queues for it per file.
        """
        if self._lifetime <= timedelta(0) or self._max_entries <= 0:
            return [self.backing.unwrap(*item) for item in items]
        # The context in its own order: the same context in another order is
        # only a miss, never a wrong key.
        keys: list[_Key] = [
            (kek_id, wrapped, tuple(context.items())) for kek_id, wrapped, context in items
        ]
        now = self._clock.now()
        found: list[bytes | None] = []
        with self._lock:
            for key in keys:
                entry = self._entries.get(key)
                if entry is not None and now < entry[0]:
                    self._entries.move_to_end(key)
                    found.append(entry[1])
                    continue
                if entry is not None:
                    del self._entries[key]
                found.append(None)
        # Unwrapped outside the lock: a slow KMS call must not hold up other grants.
        fresh = {
            position: self.backing.unwrap(*items[position])
            for position, data_key in enumerate(found)
            if data_key is None
        }
        if fresh:
            with self._lock:
                for position, data_key in fresh.items():
                    self._entries[keys[position]] = (now + self._lifetime, data_key)
                    self._entries.move_to_end(keys[position])
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        return [data_key if data_key is not None else fresh[i] for i, data_key in enumerate(found)]

    def forget_all(self) -> None:
        """Drop every remembered key (a KEK was retired or withdrawn by this process)."""
        with self._lock:
            self._entries.clear()

    def wrap(self, data_key: bytes, context: dict[str, str]) -> tuple[str, bytes]:
        return self.backing.wrap(data_key, context)

    def check(self) -> None:
        self.backing.check()

    def current_id(self) -> str:
        return self.backing.current_id()

    def advance(self) -> str:
        return self.backing.advance()

    def known_ids(self) -> list[str]:
        return self.backing.known_ids()

    def holds(self, kek_id: str) -> bool:
        return self.backing.holds(kek_id)

    def retire(self, kek_id: str) -> None:
        self.backing.retire(kek_id)
        self.forget_all()
