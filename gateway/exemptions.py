"""Exemptions under a two-person rule: one admin proposes, different admins approve.

Every step is audited in the same transaction as the change it makes, and
each is re-checked inside that transaction, so two admins racing cannot
approve a proposal twice or approve one that was just revoked. Only approved
exemptions that are in force and not revoked ever reach the policy; a
revocation or an expiry takes effect on the next request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.catalog import Catalog
from gateway.clock import Clock, as_utc
from gateway.context.policy_source import PolicySource
from gateway.errors import Conflict, Forbidden, InvalidInput, NotFound
from gateway.identity.principal import Principal
from gateway.names import check_model_id, check_org_id
from gateway.policy.countries import country_code
from gateway.policy.exemptions import ActiveExemption, ExemptionKind, may_cover
from gateway.recent import RecentCache
from gateway.state.database import read
from gateway.state.tables import Exemption

ALL_MODELS = "*"


@dataclass(frozen=True)
class Proposal:
    org: str
    kind: str
    reference: str
    countries: list[str]
    models: list[str]
    until: date
    reason: str
    conditions: str | None = None
    valid_from: date | None = None  # default: today


class ExemptionService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        audit: AuditLog,
        catalog: Catalog,
        policy: PolicySource,
        clock: Clock,
        approvals_required: int = 1,
        pending_for: timedelta = timedelta(days=7),
    ) -> None:
        if approvals_required < 1:
            raise InvalidInput("an exemption needs at least one approval besides its proposer")
        self._sessions = sessions
        self._audit = audit
        self._catalog = catalog
        self._policy = policy
        self._clock = clock
        self._approvals_required = approvals_required
        self._pending_for = pending_for
        self._active: RecentCache[tuple[ActiveExemption, ...]] = RecentCache(
            clock, timedelta(seconds=1), remember_none=True
        )

    def propose(
        self, admin: Principal, proposal: Proposal, context: RequestContext
    ) -> dict[str, Any]:
        kind, countries, models = self._validated(proposal)
        now = self._clock.now()
        row = Exemption(
            id=uuid.uuid4().hex,
            org_id=proposal.org,
            kind=kind.value,
            reference=proposal.reference.strip(),
            countries=json.dumps(countries),
            models=None if models is None else json.dumps(models),
            valid_from=proposal.valid_from or now.date(),
            valid_until=proposal.until,
            reason=proposal.reason.strip(),
            conditions=(proposal.conditions or "").strip() or None,
            proposed_by=admin.subject,
            proposed_at=now,
            approvals="[]",
            status="pending",
        )
        self._record(
            "exemption.propose", admin, context, row, lambda session, _indices: session.add(row)
        )
        return self._view(row)

    def _validated(self, proposal: Proposal) -> tuple[ExemptionKind, list[str], list[str] | None]:
        try:
            kind = ExemptionKind(proposal.kind)
        except ValueError:
            raise InvalidInput(f"kind must be one of {[k.value for k in ExemptionKind]}") from None
        if self._catalog.org(check_org_id(proposal.org)) is None:
            raise InvalidInput(f"no organisation {proposal.org!r}")
        if not proposal.reference.strip() or not proposal.reason.strip():
            raise InvalidInput("an exemption needs a reference and a reason")
        if not proposal.countries:
            raise InvalidInput("an exemption must name at least one country")
        countries = sorted({country_code(c) for c in proposal.countries})
        today = self._clock.now().date()
        pack = self._policy.current
        for code in countries:
            tier = pack.tier_of(code, today).tier
            if not may_cover(kind, tier):
                raise InvalidInput(
                    f"{code} is Tier {tier}: only a license can cover a Tier 3 country"
                )
        if proposal.until < today:
            raise InvalidInput("an exemption cannot end before today")
        if proposal.valid_from is not None and proposal.valid_from > proposal.until:
            raise InvalidInput("an exemption cannot start after it ends")
        if proposal.models == [ALL_MODELS]:
            return kind, countries, None
        if not proposal.models or ALL_MODELS in proposal.models:
            raise InvalidInput("models must be model ids, or just '*' for every model")
        models = sorted({check_model_id(m) for m in proposal.models})
        for model in models:
            self._catalog.model(model)  # NotFound for an unknown model
        return kind, countries, models

    def approve(
        self, admin: Principal, exemption_id: str, context: RequestContext
    ) -> dict[str, Any]:
        def change(session: Session, _indices: list[int]) -> None:
            row = self._locked_pending(session, exemption_id)
            approvals: list[str] = json.loads(row.approvals)
            if admin.subject == row.proposed_by:
                raise Forbidden("the admin who proposed an exemption cannot approve it")
            if admin.subject in approvals:
                raise Conflict("you have already approved this exemption")
            approvals.append(admin.subject)
            row.approvals = json.dumps(approvals)
            if len(approvals) >= self._approvals_required:
                row.status = "approved"
                row.decided_by, row.decided_at = admin.subject, self._clock.now()

        return self._decide("exemption.approve", admin, exemption_id, context, change)

    def reject(
        self, admin: Principal, exemption_id: str, reason: str, context: RequestContext
    ) -> dict[str, Any]:
        if not reason.strip():
            raise InvalidInput("a rejection needs a reason")

        def change(session: Session, _indices: list[int]) -> None:
            row = self._locked_pending(session, exemption_id)
            row.status, row.decision_reason = "rejected", reason.strip()
            row.decided_by, row.decided_at = admin.subject, self._clock.now()

        return self._decide("exemption.reject", admin, exemption_id, context, change)

    def revoke(
        self, admin: Principal, exemption_id: str, context: RequestContext
    ) -> dict[str, Any]:
        def change(session: Session, _indices: list[int]) -> None:
            row = _locked(session, exemption_id)
            if row.status in ("revoked", "rejected"):
                raise Conflict(f"exemption {exemption_id} is already {row.status}")
            row.status = "revoked"
            row.decided_by, row.decided_at = admin.subject, self._clock.now()

        return self._decide("exemption.revoke", admin, exemption_id, context, change)

    def _locked_pending(self, session: Session, exemption_id: str) -> Exemption:
        row = _locked(session, exemption_id)
        if self._status(row) != "pending":
            raise Conflict(f"exemption {exemption_id} is {self._status(row)}, not pending")
        return row

    def _decide(
        self,
        event: str,
        admin: Principal,
        exemption_id: str,
        context: RequestContext,
        change: Callable[[Session, list[int]], None],
    ) -> dict[str, Any]:
        before = self._row(exemption_id)
        self._record(event, admin, context, before, change)
        return self._view(self._row(exemption_id))

    def _record(
        self,
        event: str,
        admin: Principal,
        context: RequestContext,
        row: Exemption,
        change: Callable[[Session, list[int]], None],
    ) -> None:
        entry = build_event(
            event,
            time=self._clock.now(),
            context=context,
            principal=admin,
            exemption=_recorded(row),
        )

        def change_then_record(session: Session, indices: list[int]) -> dict[str, Any]:
            # The entry records the exemption as this change left it (status,
            # approvals), read under the transaction's lock, not as it was before.
            change(session, indices)
            after = session.get(Exemption, row.id)
            return {"exemption": _recorded(after if after is not None else row)}

        self._audit.append([entry], change_then_record)
        self._active.clear()

    def _row(self, exemption_id: str) -> Exemption:
        row: Exemption | None = read(self._sessions, lambda s: s.get(Exemption, exemption_id))
        if row is None:
            raise NotFound(f"no exemption {exemption_id!r}")
        return row

    def list(self) -> list[dict[str, Any]]:
        query = select(Exemption).order_by(Exemption.proposed_at)
        rows = read(self._sessions, lambda s: list(s.scalars(query)))
        return [self._view(row) for row in rows]

    def active_for(self, org_id: str) -> tuple[ActiveExemption, ...]:
        """The organisation's approved exemptions (what the policy sees), remembered a second.

        Read on every grant and changed rarely, so each organisation's list is
        kept for a second (this process's own changes clear it). A stale list
        can only lack an exemption approved elsewhere within that second, which
        denies; it can never keep a revoked one working, because a grant that
        rests on an exemption checks it again inside its audited transaction
        (``still_in_force``).
        """
        return self._active.lookup(org_id, lambda: self._read_active(org_id)) or ()

    def forget(self, org_id: str) -> None:
        """Drop the remembered list of one organisation (it is read afresh next time)."""
        self._active.forget(org_id)

    def _read_active(self, org_id: str) -> tuple[ActiveExemption, ...]:
        query = select(Exemption).where(Exemption.org_id == org_id, Exemption.status == "approved")
        rows = read(self._sessions, lambda s: list(s.scalars(query)))
        return tuple(_active(row) for row in rows if self._status(row) == "approved")

    def still_in_force(self, session: Session, exemption_id: str) -> bool:
        """Whether the exemption is approved and in force now, read in the caller's transaction."""
        row = session.get(Exemption, exemption_id)
        return (
            row is not None
            and self._status(row) == "approved"
            and _active(row).in_force(self._clock.now().date())
        )

    def is_active(self, exemption_id: str) -> bool:
        try:
            row = self._row(exemption_id)
        except NotFound:
            return False
        return self._status(row) == "approved" and _active(row).in_force(self._clock.now().date())

    def _status(self, row: Exemption) -> str:
        today = self._clock.now().date()
        if (
            row.status == "pending"
            and self._clock.now() >= as_utc(row.proposed_at) + self._pending_for
        ):
            return "expired"
        if row.status in ("pending", "approved") and today > row.valid_until:
            return "expired"
        return row.status

    def _view(self, row: Exemption) -> dict[str, Any]:
        return {
            "id": row.id,
            "org": row.org_id,
            "kind": row.kind,
            "reference": row.reference,
            "countries": json.loads(row.countries),
            "models": [ALL_MODELS] if row.models is None else json.loads(row.models),
            "valid_from": row.valid_from.isoformat(),
            "until": row.valid_until.isoformat(),
            "reason": row.reason,
            "conditions": row.conditions,
            "proposed_by": row.proposed_by,
            "proposed_at": as_utc(row.proposed_at).isoformat(),
            "approvals": json.loads(row.approvals),
            "approvals_required": self._approvals_required,
            "status": self._status(row),
            "decided_by": row.decided_by,
            "decision_reason": row.decision_reason,
        }


def _recorded(row: Exemption) -> dict[str, Any]:
    """An exemption as its audit entries record it."""
    return {
        "id": row.id,
        "org": row.org_id,
        "kind": row.kind,
        "reference": row.reference,
        "countries": json.loads(row.countries),
        "models": None if row.models is None else json.loads(row.models),
        "valid_from": row.valid_from.isoformat(),
        "until": row.valid_until.isoformat(),
        "proposed_by": row.proposed_by,
        "approvals": json.loads(row.approvals),
        "status": row.status,
        "decided_by": row.decided_by,
        "decision_reason": row.decision_reason,
    }


def _locked(session: Session, exemption_id: str) -> Exemption:
    row = session.scalars(
        select(Exemption).where(Exemption.id == exemption_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no exemption {exemption_id!r}")
    return row


def _active(row: Exemption) -> ActiveExemption:
    models = None if row.models is None else frozenset(json.loads(row.models))
    return ActiveExemption(
        row.id,
        ExemptionKind(row.kind),
        row.reference,
        row.org_id,
        frozenset(json.loads(row.countries)),
        models,
        row.valid_from,
        row.valid_until,
    )
