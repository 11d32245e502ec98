"""Helpers for audit-log drills: fill a real log, tamper with its rows by SQL, and verify it.

The tamper helpers act like an attacker with write access to the database and
nothing else: they can rewrite rows and the tree-state row (recomputing any
hash they like), but they do not hold the audit signing key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update

from gateway.audit import checkpoint
from gateway.audit.events import build_event
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.verify import Report, verify_log
from gateway.bootstrap import Services
from gateway.canonical import canonical_json
from gateway.state.tables import AuditEntry, TreeState
from tests.conftest import MODEL, operator

SINGLE_APPENDS = 20
BATCH = 10
FILLED = SINGLE_APPENDS + BATCH
# One signed checkpoint per append: sizes 1..20, then 30 for the batch.
FILLED_CHECKPOINTS = SINGLE_APPENDS + 1


@dataclass(frozen=True)
class Row:
    idx: int
    entry: bytes
    leaf_hash: bytes

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.entry)
        return loaded


def decision_event(services: Services, number: int, *, effect: str = "deny") -> dict[str, Any]:
    return build_event(
        "grant.decide",
        time=services.clock.now(),
        context=operator(),
        actor={"subject": f"user-{number}", "org": "rhein"},
        model=MODEL,
        decision={"effect": effect, "tier": 3, "reasons": [{"code": "tier3-country"}]},
    )


def fill(services: Services) -> None:
    """Twenty single appends, then one batch of ten: 30 entries, 21 checkpoints."""
    for number in range(SINGLE_APPENDS):
        services.audit.append([decision_event(services, number)])
    services.audit.append(
        [decision_event(services, number) for number in range(SINGLE_APPENDS, FILLED)]
    )


def verify(services: Services) -> Report:
    return verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )


def rows(services: Services) -> list[Row]:
    with services.engine.connect() as connection:
        result = connection.execute(
            select(AuditEntry.idx, AuditEntry.entry, AuditEntry.leaf_hash).order_by(AuditEntry.idx)
        )
        return [Row(r.idx, r.entry, r.leaf_hash) for r in result]


def row(services: Services, idx: int) -> Row:
    return next(r for r in rows(services) if r.idx == idx)


def overwrite(services: Services, idx: int, entry: bytes, leaf: bytes) -> None:
    with services.engine.begin() as connection:
        connection.execute(
            update(AuditEntry).where(AuditEntry.idx == idx).values(entry=entry, leaf_hash=leaf)
        )


def rewrite_entry(services: Services, idx: int, **changes: Any) -> None:
    """Change fields of entry ``idx`` and recompute its leaf hash, as a careful forger would."""
    forged = canonical_json({**row(services, idx).data(), **changes})
    overwrite(services, idx, forged, leaf_hash(forged))


def delete_where(services: Services, *, first: int, last: int | None = None) -> None:
    """Delete rows ``first..last`` (inclusive; to the end when ``last`` is None)."""
    condition = AuditEntry.idx >= first
    if last is not None:
        condition = condition & (AuditEntry.idx <= last)
    with services.engine.begin() as connection:
        connection.execute(delete(AuditEntry).where(condition))


def insert_forged(services: Services, idx: int, event: dict[str, Any]) -> None:
    """A valid-looking entry: right index, right origin, canonical, matching leaf hash."""
    entry = canonical_json({**event, "index": idx, "origin": services.audit.origin})
    with services.engine.begin() as connection:
        connection.execute(
            insert(AuditEntry).values(
                idx=idx,
                entry=entry,
                leaf_hash=leaf_hash(entry),
                event=str(event["event"]),
                subject=None,
                org_id=None,
                model_id=None,
                decision=None,
                time=services.clock.now(),
            )
        )


def rewrite_head(services: Services) -> None:
    """Make the tree-state row agree with whatever rows are now stored."""
    tree = CompactRange()
    for stored in rows(services):
        tree.append(stored.leaf_hash)
    with services.engine.begin() as connection:
        connection.execute(
            update(TreeState)
            .where(TreeState.id == 1)
            .values(size=tree.size, root=tree.root(), frontier=tree.to_bytes())
        )


def checkpoint_files(services: Services) -> dict[int, Path]:
    """The stored checkpoint files by the size they sign."""
    directory = services.settings.home / "checkpoints"
    public_key = services.keys.audit_signer.public_key()
    found = {}
    for path in sorted(directory.glob("*.txt")):
        signed = checkpoint.verify(
            path.read_text(encoding="utf-8"), services.audit.origin, public_key
        )
        found[signed.size] = path
    return found
