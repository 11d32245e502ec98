"""Resume state: which parts of a partial file are already decrypted, verified and written.

A part is recorded only after its chunks passed AES-GCM authentication and
were written, so a resumed fetch skips exactly the work that cannot need
redoing; the SHA-256 over the whole file is still checked at the end.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

JOURNAL_SUFFIX = ".weightgate-journal"


class PartJournal:
    def __init__(self, partial: Path, identity: dict[str, Any]) -> None:
        self._path = partial.with_name(partial.name + JOURNAL_SUFFIX)
        self._identity = identity
        self._lock = threading.Lock()
        self.done: set[int] = set()
        self._handle: Any = None

    def open(self, partial_ok: bool) -> set[int]:
        """Load the parts done by an earlier run of this same file version, or start afresh."""
        if partial_ok and self._path.is_file():
            lines = self._path.read_text(encoding="utf-8").splitlines()
            if lines and _parse(lines[0]) == self._identity:
                self.done = {int(n) for n in lines[1:] if n.isdigit()}
        if not self.done:
            self._path.write_text(json.dumps(self._identity, sort_keys=True) + "\n", "utf-8")
        self._handle = self._path.open("a", encoding="utf-8")
        return set(self.done)

    def record(self, part: int) -> None:
        with self._lock:
            self.done.add(part)
            self._handle.write(f"{part}\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def remove(self) -> None:
        self.close()
        self._path.unlink(missing_ok=True)


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        return None


def open_partial(partial: Path, size: int) -> tuple[int, bool]:
    """Open (or create) the partial file at its final size; say whether it already was."""
    partial.parent.mkdir(parents=True, exist_ok=True)
    existed = partial.is_file() and partial.stat().st_size == size
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, size)
    return fd, existed
