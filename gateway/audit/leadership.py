"""Who publishes checkpoints: exactly one process at a time, and another when it dies.

On PostgreSQL the publisher holds a session-level advisory lock on a
connection of its own; the server releases it when that connection drops, so
a replica killed with SIGKILL hands the role on as soon as its socket closes.
On SQLite (one host) an exclusive ``flock`` on a file beside the database does
the same for the processes of ``serve --workers N``: the kernel drops it when
the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

# The advisory lock key every replica contends for ("wgcp").
PUBLISHER_LOCK = 0x77676370


class Leadership(Protocol):
    def hold(self) -> bool:
        """True if this process publishes now; tries to become the publisher if it is not."""

    def release(self) -> None: ...


class AdvisoryLockLeadership:
    def __init__(self, engine: Engine, key: int = PUBLISHER_LOCK) -> None:
        self._engine = engine
        self._key = key
        self._connection: Connection | None = None

    def hold(self) -> bool:
        if self._connection is not None:
            try:
                # A dead connection means the server has already released the lock.
                self._connection.exec_driver_sql("SELECT 1")
            except SQLAlchemyError:
                self.release()
            else:
                return True
        try:
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError:
            return False
        try:
            held = connection.exec_driver_sql(f"SELECT pg_try_advisory_lock({self._key})").scalar()
        except SQLAlchemyError:
            connection.close()
            return False
        if not held:
            connection.close()
            return False
        self._connection = connection
        return True

    def release(self) -> None:
        if self._connection is not None:
            # Closing returns the connection to the pool, so unlock explicitly
            # rather than rely on the connection being discarded.
            with contextlib.suppress(SQLAlchemyError):
                self._connection.exec_driver_sql(f"SELECT pg_advisory_unlock({self._key})")
            self._connection.close()
            self._connection = None


class FileLockLeadership:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def hold(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None


def leadership_for(engine: Engine, home: Path) -> Leadership:
    if engine.dialect.name == "postgresql":
        return AdvisoryLockLeadership(engine)
    return FileLockLeadership(home / "publisher.lock")
