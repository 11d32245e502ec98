"""Screening results stored per organisation, kept in step with the list in force.

An organisation is screened when it is registered or changed (in the same
transaction as the change) and when a list is loaded; a grant reads the
stored hits instead of screening on every request. A stored result counts
only for the list (its SHA-256), threshold and matching rule
(``MATCHER_VERSION``, stored with the hits) it was made with: after a
reload or an upgrade that changes the rule, until the background pass
reaches an organisation, a grant screens that one organisation itself
against the list in force (under 5 ms a name with the index). It never falls
back on a result made with another list, so a party listed in the new list
is denied from its first grant after the load.

The background pass is safe to run in every process at once: each batch is
written through the audit log, which serialises every write, and skips any
organisation another process has already brought up to date, so each change
is audited once (``screening.changed``, with the hits that appeared and the
ones that cleared).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.errors import Unavailable, WeightgateError
from gateway.policy.screening import (
    MATCHER_VERSION,
    ScreeningHit,
    ScreeningList,
    load_screening_list,
)
from gateway.recent import RecentCache
from gateway.state.database import read
from gateway.state.tables import Organisation, ScreeningResult

log = logging.getLogger(__name__)

# Organisations screened and written per transaction by the background pass.
BATCH = 100
# A process re-reads an organisation's stored result at most this often; a
# result another replica wrote reaches it within this time.
RESULT_LIFETIME = timedelta(seconds=1)
_BACKGROUND = {"subject": "screening", "org": None}
# How the hits column starts for a result made under the rule in force
# (``_encode``); results from before the rule had a version are a bare list.
_CURRENT_RULE = f'{{"matcher": {MATCHER_VERSION}, "hits": '


@dataclass(frozen=True)
class StoredScreening:
    list_sha256: str
    threshold: int
    hits: tuple[ScreeningHit, ...]
    matcher: int

    @classmethod
    def of(cls, row: ScreeningResult) -> StoredScreening:
        matcher, hits = _decode(row.hits)
        return cls(row.list_sha256, row.threshold, hits, matcher)


@dataclass(frozen=True)
class Screened:
    """Hits for some names against one loaded list."""

    screening: ScreeningList
    hits: tuple[ScreeningHit, ...]
    names: tuple[str, ...]


@dataclass
class RescreenReport:
    """What one pass over the organisations did."""

    screened: int = 0
    changed: list[str] = field(default_factory=list)


class _Raced(WeightgateError):
    """Another process stored a result for an organisation of this batch first."""


def names_of(org: Organisation) -> list[str]:
    return [org.name, *json.loads(org.aliases)]


class ScreeningService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        audit: AuditLog,
        clock: Clock,
        path: Path | None,
        threshold: int,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock
        self._path = path
        self._threshold = threshold
        self._list = load_screening_list(path, threshold=threshold) if path else None
        self._stored: RecentCache[StoredScreening] = RecentCache(clock, RESULT_LIFETIME)
        self._wake = threading.Event()
        self._stopping = False
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._last_failure: str | None = None

    @property
    def current(self) -> ScreeningList | None:
        return self._list

    # The grant path -------------------------------------------------------

    def hits_for(self, org_id: str, names: Sequence[str]) -> tuple[ScreeningHit, ...]:
        """The organisation's hits against the list in force: stored, or screened now."""
        screening = self._list
        if screening is None:
            return ()
        stored = self._stored.lookup(org_id, lambda: self._read(org_id))
        if stored is not None and self._is_current(stored, screening):
            return stored.hits
        # Not yet screened against this list: a reload the background pass has
        # not reached, or an organisation from before stored results.
        return tuple(screening.screen(names))

    def _read(self, org_id: str) -> StoredScreening | None:
        row = read(self._sessions, lambda s: s.get(ScreeningResult, org_id))
        return None if row is None else StoredScreening.of(row)

    def stored_results(self, org_ids: Sequence[str]) -> dict[str, StoredScreening]:
        """The stored results of these organisations, read afresh (for reviewers, not grants)."""
        wanted = list(dict.fromkeys(org_ids))
        found: dict[str, StoredScreening] = {}
        # In batches: a database bounds the parameters one statement may carry.
        for start in range(0, len(wanted), BATCH):
            for row in read(self._sessions, partial(_results_of, wanted[start : start + BATCH])):
                found[row.org_id] = StoredScreening.of(row)
        return found

    def is_current(self, stored: StoredScreening) -> bool:
        """Whether a stored result was made with the list, threshold and rule now in force."""
        screening = self._list
        return screening is not None and self._is_current(stored, screening)

    @staticmethod
    def _is_current(stored: StoredScreening, screening: ScreeningList) -> bool:
        return (
            stored.list_sha256 == screening.sha256
            and stored.threshold == screening.threshold
            and stored.matcher == MATCHER_VERSION
        )

    # Organisation changes -------------------------------------------------

    def screen(self, names: Sequence[str]) -> Screened | None:
        """Screen before the change's transaction, so no write lock is held while matching."""
        screening = self._list
        if screening is None:
            return None
        return Screened(screening, tuple(screening.screen(names)), tuple(names))

    def store(self, session: Session, org_id: str, screened: Screened | None) -> None:
        """Store a result inside the transaction that registers or changes the organisation."""
        screening = self._list
        if screening is None or screened is None:
            return
        if screened.screening is not screening:
            # A list loaded meanwhile, and its pass may already have passed this
            # organisation: the result must be for the list now in force.
            screened = Screened(screening, tuple(screening.screen(screened.names)), screened.names)
        row = session.get(ScreeningResult, org_id)
        if row is None:
            row = ScreeningResult(org_id=org_id)
            session.add(row)
        row.list_sha256, row.threshold = screening.sha256, screening.threshold
        row.hits, row.screened_at = _encode(screened.hits), self._clock.now()
        self._stored.forget(org_id)

    # List loads -----------------------------------------------------------

    def reload(self, context: RequestContext, *, by: dict[str, str | None] | None = None) -> None:
        """Re-read the configured list, audit the load, and re-screen everyone in the background.

        A list that cannot be read or parsed changes nothing.
        """
        if self._path is None:
            return
        screening = load_screening_list(self._path, threshold=self._threshold)
        previous = self._list
        event = build_event(
            "screening.load",
            time=self._clock.now(),
            context=context,
            actor=by or {"subject": "operator", "org": None},
            screening_list=_summary(screening),
            previous=_summary(previous) if previous else None,
        )
        self._audit.append([event])
        self._list = screening
        self._stored.clear()
        self.wake()

    def rescreen(self, context: RequestContext) -> RescreenReport:
        """Bring every organisation's stored result up to the list in force; audit each change."""
        report = RescreenReport()
        screening = self._list
        if screening is None:
            return report
        while True:
            orgs = read(self._sessions, lambda s: _stale(s, screening, BATCH))
            if not orgs:
                return report
            try:
                self._write_batch(orgs, screening, context, report)
            except _Raced:
                continue  # another process got there first; read what is still stale

    def _write_batch(
        self,
        orgs: list[tuple[str, list[str], StoredScreening | None]],
        screening: ScreeningList,
        context: RequestContext,
        report: RescreenReport,
    ) -> None:
        now = self._clock.now()
        results = [
            (org_id, before, tuple(screening.screen(names))) for org_id, names, before in orgs
        ]
        events = []
        for org_id, before, hits in results:
            earlier = {h.entry_id: h for h in before.hits} if before else {}
            later = {h.entry_id: h for h in hits}
            new = [h.to_dict() for e, h in later.items() if e not in earlier]
            cleared = [h.to_dict() for e, h in earlier.items() if e not in later]
            if new or cleared:
                events.append(
                    build_event(
                        "screening.changed",
                        time=now,
                        context=context,
                        actor=_BACKGROUND,
                        org=org_id,
                        screening_list=_summary(screening),
                        new_hits=new,
                        cleared_hits=cleared,
                    )
                )

        def write(session: Session, _indices: list[int]) -> None:
            for org_id, before, hits in results:
                row = session.get(ScreeningResult, org_id)
                now_stored = None if row is None else StoredScreening.of(row)
                if now_stored != before:
                    raise _Raced(f"the stored result for {org_id} changed meanwhile")
                if row is None:
                    row = ScreeningResult(org_id=org_id)
                    session.add(row)
                row.list_sha256, row.threshold = screening.sha256, screening.threshold
                row.hits, row.screened_at = _encode(hits), now

        self._audit.append(events, write)
        for org_id, _, _ in results:
            self._stored.forget(org_id)
        report.screened += len(results)
        report.changed += [e["org"] for e in events]

    # Background work ------------------------------------------------------

    def start(self, context: RequestContext) -> None:
        """Run the background pass now (catching up after a start) and after every reload."""
        if self._list is None or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._run, args=(context,), name="screening", daemon=True
        )
        self.wake()
        self._thread.start()

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    def settled(self, timeout: float) -> bool:
        """Whether the background pass finished its work within ``timeout`` seconds."""
        return self._idle.wait(timeout)

    @property
    def failure(self) -> str | None:
        """Why the last background pass stopped short, if it did."""
        return self._last_failure

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self, context: RequestContext) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                report = self.rescreen(context)
            except WeightgateError as exc:
                # Grants stay safe meanwhile: they screen stale organisations themselves.
                self._last_failure = exc.message
                log.warning("screening pass stopped short: %s", exc.message)
            else:
                self._last_failure = None
                if report.changed:
                    log.info("screening: %d organisations' hits changed", len(report.changed))
            if not self._wake.is_set():
                self._idle.set()


def _stale(
    session: Session, screening: ScreeningList, limit: int
) -> list[tuple[str, list[str], StoredScreening | None]]:
    """Up to ``limit`` organisations with no result for this list, threshold and rule."""
    query = (
        select(Organisation, ScreeningResult)
        .outerjoin(ScreeningResult, ScreeningResult.org_id == Organisation.id)
        .where(
            or_(
                ScreeningResult.org_id.is_(None),
                ~and_(
                    ScreeningResult.list_sha256 == screening.sha256,
                    ScreeningResult.threshold == screening.threshold,
                    ScreeningResult.hits.startswith(_CURRENT_RULE, autoescape=True),
                ),
            )
        )
        .order_by(Organisation.id)
        .limit(limit)
    )
    return [
        (
            org.id,
            names_of(org),
            None if result is None else StoredScreening.of(result),
        )
        for org, result in session.execute(query)
    ]


def _results_of(org_ids: list[str], session: Session) -> list[ScreeningResult]:
    query = select(ScreeningResult).where(ScreeningResult.org_id.in_(org_ids))
    return list(session.scalars(query))


def _summary(screening: ScreeningList) -> dict[str, Any]:
    return {
        "sha256": screening.sha256,
        "parties": len(screening.parties),
        "threshold": screening.threshold,
    }


def _encode(hits: Iterable[ScreeningHit]) -> str:
    """The hits with the rule that found them, so a stored result names its matcher."""
    # Written from the prefix that ``_stale`` selects on: {"matcher": N, "hits": [...]}.
    return _CURRENT_RULE + json.dumps([hit.to_dict() for hit in hits]) + "}"


def _decode(text: str) -> tuple[int, tuple[ScreeningHit, ...]]:
    """(matcher version, hits); a bare list is from before the rule had a version."""
    # Only this module writes the column; a result it cannot read decides nothing.
    unreadable = Unavailable("a stored screening result cannot be read")
    try:
        stored = json.loads(text)
        if isinstance(stored, list):
            matcher, items = 1, stored
        else:
            matcher, items = stored["matcher"], stored["hits"]
        hits = tuple(ScreeningHit(**item) for item in items)
    except (ValueError, TypeError, KeyError) as exc:
        raise unreadable from exc
    if not isinstance(matcher, int):
        raise unreadable
    return matcher, hits
