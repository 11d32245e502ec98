"""Signed checkpoints in the database, shared by every process and replica, with cosignatures.

The publisher (``gateway.audit.publisher``) adds a row per checkpoint it
signs; readers ask for the newest, or the one at a size. The database is not
the trust anchor here (its operator could rewrite it): the same notes are
also written to an anchor store outside it, and a witness's cosignature is a
second key in another trust domain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Select, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit import checkpoint
from gateway.errors import NotFound, Unavailable
from gateway.state.database import read, writer_sessions
from gateway.state.tables import SignedCheckpoint


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    signed_at: datetime


def _page_after(size: int) -> Select[int, str]:
    return (
        select(SignedCheckpoint.size, SignedCheckpoint.note)
        .where(SignedCheckpoint.size > size)
        .order_by(SignedCheckpoint.size)
        .limit(1000)
    )


def _stored(row: SignedCheckpoint) -> StoredCheckpoint:
    return StoredCheckpoint(row.size, row.root, row.note, row.signed_at)


class CheckpointStore:
    def __init__(
        self, sessions: sessionmaker[Session], origin: str, public_key: Ed25519PublicKey
    ) -> None:
        self._sessions = sessions
        self._writers = writer_sessions(sessions)
        self.origin = origin
        self._public_key = public_key

    def newest(self) -> StoredCheckpoint | None:
        """The newest signed checkpoint: one index lookup, whatever the log's age."""
        statement = select(SignedCheckpoint).order_by(SignedCheckpoint.size.desc()).limit(1)
        row = read(self._sessions, lambda s: s.scalars(statement).one_or_none())
        return None if row is None else _stored(row)

    def verify(self, note: str) -> checkpoint.Checkpoint:
        """A note of this log, its signature checked (IntegrityError if forged)."""
        return checkpoint.verify(note, self.origin, self._public_key)

    def verified_newest(self) -> checkpoint.Checkpoint | None:
        """The newest checkpoint with its signature checked (IntegrityError if forged)."""
        newest = self.newest()
        return None if newest is None else self.verify(newest.note)

    def latest(self) -> str | None:
        newest = self.newest()
        return None if newest is None else newest.note

    def note_at(self, size: int) -> str | None:
        row = read(self._sessions, lambda s: s.get(SignedCheckpoint, size))
        return None if row is None else row.note

    def notes(self) -> Iterator[str]:
        """Every checkpoint's note in size order, read in pages (there is one per interval)."""
        after = -1
        while True:
            statement = _page_after(after)
            page = read(self._sessions, lambda s: s.execute(statement).all())  # noqa: B023
            for size, note in page:
                after = size
                yield note
            if len(page) < 1000:
                return

    def add(self, signed: checkpoint.Checkpoint, note: str, at: datetime) -> None:
        row = SignedCheckpoint(size=signed.size, root=signed.root, note=note, signed_at=at)
        try:
            with self._writers.begin() as session:
                if session.get(SignedCheckpoint, signed.size) is None:
                    session.add(row)
        except SQLAlchemyError as exc:
            raise Unavailable("the checkpoint cannot be stored") from exc

    def add_cosignature(self, size: int, line: str) -> str:
        """Keep a witness's (already verified) cosignature with the checkpoint it signs."""
        try:
            with self._writers.begin() as session:
                row = session.get(SignedCheckpoint, size)
                if row is None:
                    raise NotFound(f"no checkpoint of size {size}")
                row.note = checkpoint.add_signature(row.note, line)
                return row.note
        except SQLAlchemyError as exc:
            raise Unavailable("the cosignature cannot be stored") from exc
