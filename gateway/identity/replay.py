"""Single use: a DPoP proof, or a one-time token, is accepted once across every gateway process.

Seen identifiers live in the shared database until they expire, so a replay
to another replica is caught as surely as one to the same process.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError as DuplicateKey
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import Clock
from gateway.errors import Unavailable
from gateway.state.database import writer_sessions
from gateway.state.tables import SeenToken


class ReplayGuard(Protocol):
    def first_use(self, namespace: str, identifier: str, expires_at: datetime) -> bool:
        """True the first time (namespace, identifier) is seen before it expires."""
        ...


class DatabaseReplayGuard:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = writer_sessions(sessions)
        self._clock = clock

    def first_use(self, namespace: str, identifier: str, expires_at: datetime) -> bool:
        digest = hashlib.sha256(f"{namespace}\x00{identifier}".encode()).digest()
        now = self._clock.now()
        try:
            with self._sessions.begin() as session:
                session.execute(delete(SeenToken).where(SeenToken.expires_at < now))
                session.add(SeenToken(digest=digest, expires_at=expires_at))
        except DuplicateKey:
            return False
        except SQLAlchemyError as exc:
            raise Unavailable("the replay cache is unavailable") from exc
        return True
