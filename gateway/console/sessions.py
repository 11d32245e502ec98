"""Console sessions and OIDC sign-ins under way, kept in the database.

In the database rather than in a signed cookie so that signing out ends a
session on every replica at once, and so that a session is never longer-lived
than the token it was opened with. The cookie carries a random secret; the
database keeps its SHA-256, so a copy of the database opens no session.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from gateway.clock import Clock, as_utc
from gateway.identity.principal import Principal, Role
from gateway.state.database import read, write, writer_sessions
from gateway.state.tables import ConsoleSession, ConsoleSignIn

# However long the token lives, a console session ends after a working day.
MAX_SESSION = timedelta(hours=8)
# An OIDC sign-in must come back from the identity provider within this.
SIGN_IN_WINDOW = timedelta(minutes=10)
# The cookie's secret and the state parameter: 32 random bytes, URL-safe base64.
SECRET_CHARS = 43


@dataclass(frozen=True)
class SignedIn:
    """An open session: who, until when, and the CSRF token its forms must carry."""

    principal: Principal
    csrf: str
    expires_at: datetime


@dataclass(frozen=True)
class SignInUnderWay:
    issuer: str
    code_verifier: str
    nonce: str
    return_to: str


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def well_formed(secret: str) -> bool:
    """Whether ``secret`` could be one of ours: checked before any database lookup."""
    return len(secret) == SECRET_CHARS and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in secret
    )


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA-256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ConsoleSessions:
    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._writers = writer_sessions(sessions)
        self._clock = clock

    def open(self, principal: Principal, token_expires_at: datetime) -> tuple[str, SignedIn]:
        """A new session for ``principal``, ending with its token; returns the cookie's secret."""
        now = self._clock.now()
        secret = secrets.token_urlsafe(32)
        signed_in = SignedIn(
            principal, secrets.token_urlsafe(32), min(token_expires_at, now + MAX_SESSION)
        )
        row = ConsoleSession(
            secret_sha256=_digest(secret),
            subject=principal.subject,
            org_id=principal.org,
            country=principal.country,
            roles=json.dumps(sorted(principal.roles)),
            issuer=principal.issuer,
            token_id=principal.token_id,
            csrf=signed_in.csrf,
            created_at=now,
            expires_at=signed_in.expires_at,
        )
        with write(self._writers) as session:
            # Sessions that ended are swept as new ones open: the table stays small.
            session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
            session.add(row)
        return secret, signed_in

    def find(self, secret: str) -> SignedIn | None:
        """The session this cookie secret opens, if it is still open."""
        if not well_formed(secret):
            return None
        row = read(self._sessions, lambda s: s.get(ConsoleSession, _digest(secret)))
        if row is None or as_utc(row.expires_at) <= self._clock.now():
            return None
        principal = Principal(
            subject=row.subject,
            org=row.org_id,
            country=row.country,
            roles=frozenset(Role(r) for r in json.loads(row.roles)),
            token_id=row.token_id,
            issuer=row.issuer,
        )
        return SignedIn(principal, row.csrf, as_utc(row.expires_at))

    def close(self, secret: str) -> None:
        if not well_formed(secret):
            return
        with write(self._writers) as session:
            session.execute(
                delete(ConsoleSession).where(ConsoleSession.secret_sha256 == _digest(secret))
            )

    def begin_sign_in(self, issuer: str, return_to: str) -> tuple[str, SignInUnderWay]:
        """A sign-in's state parameter, PKCE verifier and nonce, remembered until the callback."""
        now = self._clock.now()
        state = secrets.token_urlsafe(32)
        under_way = SignInUnderWay(
            issuer, secrets.token_urlsafe(64), secrets.token_urlsafe(32), return_to
        )
        row = ConsoleSignIn(
            state_sha256=_digest(state),
            issuer=issuer,
            code_verifier=under_way.code_verifier,
            nonce=under_way.nonce,
            return_to=return_to,
            expires_at=now + SIGN_IN_WINDOW,
        )
        with write(self._writers) as session:
            session.execute(delete(ConsoleSignIn).where(ConsoleSignIn.expires_at <= now))
            session.add(row)
        return state, under_way

    def finish_sign_in(self, state: str) -> SignInUnderWay | None:
        """The sign-in ``state`` names, taken once: a replayed callback finds nothing."""
        if not well_formed(state):
            return None
        now = self._clock.now()
        with write(self._writers) as session:
            row = session.get(ConsoleSignIn, _digest(state))
            if row is None:
                return None
            session.delete(row)
            if as_utc(row.expires_at) <= now:
                return None
            return SignInUnderWay(row.issuer, row.code_verifier, row.nonce, row.return_to)
