"""Quotas per organisation and per subject: grants per hour and bytes per day.

Counted from the grants table, so every replica sees the same usage. A grant
is checked twice: before the decision (cheap, and refuses the common case
without a durable append), and again inside the serialised audit append that
inserts the grant (``enforce``). Appends from every process and replica queue
on one row lock, so the second count sees every grant committed before it and
concurrent requests cannot overshoot a quota.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway import metrics
from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock, as_utc
from gateway.errors import InvalidInput, QuotaExceeded
from gateway.identity.principal import Principal
from gateway.names import check_org_id, check_subject
from gateway.recent import RecentCache
from gateway.state.database import read
from gateway.state.tables import Grant, Quota

SCOPES = ("org", "subject")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Refusal:
    scope: str
    what: str  # e.g. "6 grants in the last hour (limit 5)"
    retry_after: int  # seconds until the window frees enough


@dataclass(frozen=True)
class Limits:
    grants_per_hour: int | None
    bytes_per_day: int | None


class QuotaService:
    def __init__(
        self, sessions: sessionmaker[Session], *, audit: AuditLog, clock: Clock, hash_key: bytes
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._hash_key = hash_key
        # Quotas change rarely and are read on every grant: remembered for a
        # second (this process's own changes clear it at once).
        self._known: RecentCache[Quota] = RecentCache(
            clock, timedelta(seconds=1), remember_none=True
        )

    def set(
        self, admin: Principal, scope: str, key: str, limits: Limits, context: RequestContext
    ) -> dict[str, Any]:
        if scope not in SCOPES:
            raise InvalidInput(f"scope must be one of {SCOPES}")
        # Keys are what a token can claim, so a quota can only name what exists.
        key = check_org_id(key) if scope == "org" else check_subject(key)
        for value in (limits.grants_per_hour, limits.bytes_per_day):
            if value is not None and value < 0:
                raise InvalidInput("a quota cannot be negative")

        def store(session: Session, _indices: list[int]) -> None:
            row = session.get(Quota, (scope, key)) or Quota(scope=scope, key=key)
            row.grants_per_hour, row.bytes_per_day = limits.grants_per_hour, limits.bytes_per_day
            session.add(row)

        event = build_event(
            "quota.set",
            time=self._clock.now(),
            context=context,
            principal=admin,
            quota={
                "scope": scope,
                "key": key,
                "grants_per_hour": limits.grants_per_hour,
                "bytes_per_day": limits.bytes_per_day,
            },
        )
        self._audit.append([event], store)
        self._known.clear()
        return {
            "scope": scope,
            "key": key,
            "grants_per_hour": limits.grants_per_hour,
            "bytes_per_day": limits.bytes_per_day,
        }

    def check(
        self, principal: Principal, model: str, requested_bytes: int, context: RequestContext
    ) -> None:
        """Raise QuotaExceeded (429, audited) if this grant would go over a quota."""
        refusal = self._refusal(
            principal, requested_bytes, lambda query: read(self._sessions, lambda s: _row(s, query))
        )
        if refusal is not None:
            self.refuse(principal, model=model, context=context, refusal=refusal)

    def applies(self, principal: Principal) -> bool:
        """Whether any quota limits this principal (as known to this process, a second stale)."""
        return any(
            self._quota(scope, key) is not None
            for scope, key in (("org", principal.org), ("subject", principal.subject))
        )

    def enforce(self, session: Session, principal: Principal, requested_bytes: int) -> None:
        """The authoritative check, inside the serialised append; QuotaExceeded rolls it back.

        The caller audits the refusal (``refuse``) once the append has failed.
        """
        refusal = self._refusal(principal, requested_bytes, lambda query: _row(session, query))
        if refusal is not None:
            raise QuotaExceeded(f"the {refusal.scope} quota is used up", refusal=refusal)

    def _refusal(
        self,
        principal: Principal,
        requested_bytes: int,
        usage_of: Callable[[Select[Any, Any]], tuple[Any, Any]],
    ) -> Refusal | None:
        now = self._clock.now()
        # A subject is someone only together with its issuer: the same name from
        # another trusted issuer is another person, with a count of its own.
        for scope, key in (("org", principal.org), ("subject", principal.subject)):
            quota = self._quota(scope, key)
            if quota is None:
                continue  # the common case: no SQL expression is even built
            whose = (
                (Grant.org_id == principal.org,)
                if scope == "org"
                else (Grant.subject == principal.subject, Grant.issuer == principal.issuer)
            )
            for limit, window, measure, adding, unit in (
                (quota.grants_per_hour, HOUR, func.count(), 1, "grants in the last hour"),
                (
                    quota.bytes_per_day,
                    DAY,
                    func.coalesce(func.sum(Grant.granted_bytes), 0),
                    requested_bytes,
                    "bytes in a day",
                ),
            ):
                if limit is None:
                    continue
                used, oldest = usage_of(
                    select(measure, func.min(Grant.created_at)).where(
                        *whose, Grant.created_at > now - window
                    )
                )
                if (used or 0) + adding > limit:
                    return Refusal(
                        scope,
                        f"{(used or 0) + adding:,} {unit} (limit {limit:,})",
                        _retry_after(now, oldest, window),
                    )
        return None

    def _quota(self, scope: str, key: str) -> Quota | None:
        return self._known.lookup(
            (scope, key), lambda: read(self._sessions, lambda s: s.get(Quota, (scope, key)))
        )

    def refuse(
        self, principal: Principal, *, model: str, context: RequestContext, refusal: Refusal
    ) -> NoReturn:
        """Audit the refusal, then raise QuotaExceeded (429 with Retry-After)."""
        event = build_event(
            "grant.quota",
            time=self._clock.now(),
            context=context,
            principal=principal,
            hash_key=self._hash_key,
            model=model,
            quota={
                "scope": refusal.scope,
                "exceeded": refusal.what,
                "retry_after": refusal.retry_after,
            },
        )
        self._audit.append([event])
        metrics.QUOTA_REFUSALS.labels(refusal.scope).inc()
        raise QuotaExceeded(
            f"the {refusal.scope} quota is used up: {refusal.what}",
            retry_after=refusal.retry_after,
        )


def _row(session: Session, query: Select[Any, Any]) -> tuple[Any, Any]:
    """How much was granted in the window, and when the oldest counted grant was."""
    row = session.execute(query).one()
    return row[0], row[1]


def _retry_after(now: datetime, oldest: Any, window: timedelta) -> int:
    wait = window if oldest is None else as_utc(oldest) + window - now
    return max(1, math.ceil(wait.total_seconds()))
