"""The pack in force, shared by every process and replica through the database.

The pack's own text lives in one database row, so every replica enforces the
same bytes whatever pack files its disk holds. A switch loads and validates
the new pack completely, then writes the row in the same transaction as its
``policy.load`` audit entry; a pack that fails to load, or a switch the log
cannot record, leaves the running pack in force.

Each process re-reads the row at most once per ``refresh`` (1 s by default),
so every process enforces a switch within ``refresh`` of its commit (plus the
duration of a request already deciding). A process that cannot parse the pack
in force refuses to decide (503) rather than enforce an older one.

The configured pack (``WEIGHTGATE_POLICY``) only seeds a database that has
none. After that the database is the truth: a replica restarted with another
configuration keeps enforcing what every other replica enforces, and says so
at start; switching is an explicit, audited reload.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.errors import Unavailable, WeightgateError
from gateway.identity.principal import Principal
from gateway.policy.pack import PolicyPack, parse_pack, read_pack
from gateway.state.database import read
from gateway.state.tables import PolicyInForce

POLICY_REFRESH = timedelta(seconds=1)


def pack_summary(pack: PolicyPack) -> dict[str, str]:
    return {"name": pack.name, "version": pack.version, "sha256": pack.sha256}


@dataclass(frozen=True)
class Establishment:
    """What a starting process found: the pack in force, and the one it was configured with."""

    in_force: PolicyPack
    configured: PolicyPack


class _AlreadySet(WeightgateError):
    """Another process seeded the pack first; this start's entry is rolled back."""


class PolicySource:
    def __init__(
        self,
        configured: PolicyPack,
        *,
        spec: str,
        search_dir: Path | None,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        clock: Clock,
        refresh: timedelta = POLICY_REFRESH,
    ) -> None:
        self._current = configured
        self._configured = configured
        self._spec = spec
        self._search_dir = search_dir
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._refresh = refresh
        self._next_check: datetime | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> PolicyPack:
        """The pack in force, as of at most ``refresh`` ago; one whole pack, never a mix."""
        now = self._clock.now()
        if self._next_check is not None and now < self._next_check:
            return self._current
        with self._lock:
            if self._next_check is None or now >= self._next_check:
                self._current = self._read_in_force() or self._current
                self._next_check = now + self._refresh
            return self._current

    def switched_at(self, pack: PolicyPack) -> datetime | None:
        """When ``pack`` was put in force, if it is the one the database names."""
        row: PolicyInForce | None = read(self._sessions, lambda s: s.get(PolicyInForce, 1))
        return row.switched_at if row is not None and row.sha256 == pack.sha256 else None

    def _read_in_force(self) -> PolicyPack | None:
        row: PolicyInForce | None = read(self._sessions, lambda s: s.get(PolicyInForce, 1))
        if row is None:
            return None
        if row.sha256 == self._current.sha256:
            return self._current
        try:
            pack = parse_pack(row.source, source=f"{row.spec} (in force)")
        except WeightgateError as exc:
            raise Unavailable(
                f"this gateway cannot load the policy pack in force ({row.name}): {exc.message}"
            ) from exc
        if pack.sha256 != row.sha256:
            raise Unavailable(f"the stored policy pack {row.name} does not match its SHA-256")
        return pack

    def establish(self, context: RequestContext) -> Establishment:
        """At start: seed the configured pack if the database has none; report what is in force."""
        if read(self._sessions, lambda s: s.get(PolicyInForce, 1)) is None:
            raw, source = read_pack(self._spec, search_dir=self._search_dir)
            try:
                self._switch(raw, source, self._configured, context, by=None, seed=True)
            except _AlreadySet:
                pass
            else:
                return Establishment(self._configured, self._configured)
        self._next_check = None
        return Establishment(self.current, self._configured)

    def reload(
        self, context: RequestContext, *, name: str | None = None, by: Principal | None = None
    ) -> PolicyPack:
        """Switch every process to ``name`` (or to the configured pack) after auditing it."""
        raw, source = read_pack(name or self._spec, search_dir=self._search_dir)
        pack = parse_pack(raw, source=source)
        self._switch(raw, source, pack, context, by=by, seed=False)
        return pack

    def _switch(
        self,
        raw: bytes,
        source: str,
        pack: PolicyPack,
        context: RequestContext,
        *,
        by: Principal | None,
        seed: bool,
    ) -> None:
        self._next_check = None
        previous = self.current  # re-read: another replica may have switched since
        with self._lock:
            now = self._clock.now()

            def record(session: Session, _indices: list[int]) -> None:
                row = session.get(PolicyInForce, 1)
                if row is None:
                    row = PolicyInForce(id=1)
                    session.add(row)
                elif seed:
                    raise _AlreadySet("the policy is already set")
                row.spec, row.name, row.version = source, pack.name, pack.version
                row.sha256, row.source, row.switched_at = pack.sha256, raw, now

            event = build_event(
                "policy.load",
                time=now,
                context=context,
                principal=by,
                actor=None if by else {"subject": "operator", "org": None},
                pack=pack_summary(pack),
                previous=None if seed else pack_summary(previous),
            )
            self._audit.append([event], record)
            self._current = pack
            self._next_check = now + self._refresh
