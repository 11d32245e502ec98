"""KEK rotation: re-wrap every stored data key under the current KEK, then retire the old one.

Only the wrapped keys in the catalog change; the encrypted weights, their
headers and their storage URLs do not, so grants issued before a rotation
keep downloading and decrypting.

Rows are re-wrapped in batches of ``batch_size`` in file-version order. Each
batch is one transaction with its own ``keys.rewrap`` audit entry, and each
row is updated only if it still holds the wrap that was read, so a batch
either lands whole with its entry or not at all. Rows already under the
target KEK are never selected, so an interrupted rotation is finished by
running it again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.catalog import FILES_LIFETIME, key_context
from gateway.clock import Clock, as_utc
from gateway.crypto.keystore import Keystore
from gateway.errors import Conflict, IntegrityError, InvalidInput, NotFound
from gateway.state.database import read
from gateway.state.tables import AuditEntry, ModelFile

T = TypeVar("T")
DEFAULT_BATCH_SIZE = 200
MAX_BATCH_SIZE = 1000
# Running gateways re-read a revision's files every FILES_LIFETIME, so a KEK is
# retired only once none of them can still hold a row wrapped under it (with
# room for a replica whose clock runs behind).
RETIRE_AFTER_REWRAP = 2 * FILES_LIFETIME
OPERATOR = {"subject": "operator", "org": None}


@dataclass(frozen=True)
class KekUse:
    kek_id: str
    data_keys: int
    current: bool
    in_keystore: bool


@dataclass(frozen=True)
class RotationProgress:
    target: str
    created: bool  # a new KEK version was made for this rotation
    pending: int  # data keys not under the target when the rotation started
    done: int


@dataclass(frozen=True)
class RotationResult:
    target: str
    created: bool  # a new KEK version was made for this rotation
    rewrapped: int
    batches: int
    unreadable: tuple[str, ...]  # "model@revision:path" of rows whose key would not unwrap


@dataclass(frozen=True)
class _Rewrap:
    file_version: str
    old_kek: str
    old_wrapped: bytes
    new_wrapped: bytes


class KeyRotation:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        audit: AuditLog,
        keystore: Keystore,
        clock: Clock,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        # The keystore itself, not the grant path's cache: every row is read once.
        self._keystore = keystore
        self._clock = clock

    def status(self) -> list[KekUse]:
        """Every KEK the keystore holds or a data key names, and how many data keys use it."""
        counts = dict(
            self._read(
                lambda s: list(
                    s.execute(select(ModelFile.kek_id, func.count()).group_by(ModelFile.kek_id))
                )
            )
        )
        current = self._keystore.current_id()
        ids = sorted(set(self._keystore.known_ids()) | set(counts) | {current}, key=_natural)
        return [KekUse(i, counts.get(i, 0), i == current, self._keystore.holds(i)) for i in ids]

    def rotate(
        self,
        context: RequestContext,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: Callable[[RotationProgress], None] | None = None,
    ) -> RotationResult:
        """Make a new KEK current unless an earlier rotation is unfinished, then re-wrap onto it."""
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise InvalidInput(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}")
        target = self._keystore.current_id()
        created = False
        pending = self._pending(target)
        if pending == 0:
            previous, target = target, self._keystore.advance()
            created = target != previous
            pending = self._pending(target)
        if created or pending:
            event = build_event(
                "keys.rotate",
                time=self._clock.now(),
                context=context,
                actor=OPERATOR,
                kek={"target": target, "new_version": created},
                pending=pending,
            )
            self._audit.append([event])
        if progress is not None:
            progress(RotationProgress(target, created, pending, 0))
        rewrapped = batches = 0
        unreadable: list[str] = []
        after = ""
        while True:
            rows = self._next_batch(target, after, batch_size)
            if not rows:
                break
            after = rows[-1].file_version
            changes: list[_Rewrap] = []
            moved: Counter[str] = Counter()
            for row in rows:
                context_of_row = key_context(row.model_id, row.revision, row.path, row.file_version)
                try:
                    data_key = self._keystore.unwrap(row.kek_id, row.wrapped_key, context_of_row)
                except IntegrityError:
                    # A damaged row: left as it is and named, the rest rotate.
                    unreadable.append(f"{row.model_id}@{row.revision}:{row.path}")
                    continue
                kek_id, wrapped = self._keystore.wrap(data_key, context_of_row)
                if kek_id != target:
                    raise Conflict(
                        f"the current KEK changed to {kek_id} during the rotation; run it again"
                    )
                changes.append(_Rewrap(row.file_version, row.kek_id, row.wrapped_key, wrapped))
                moved[row.kek_id] += 1
            if changes:
                self._commit_batch(changes, moved, target, context)
                rewrapped += len(changes)
                batches += 1
                if progress is not None:
                    progress(RotationProgress(target, created, pending, rewrapped))
        return RotationResult(target, created, rewrapped, batches, tuple(unreadable))

    def retire(self, kek_id: str, context: RequestContext) -> None:
        """Disable ``kek_id`` once no data key uses it and no gateway can still hold one."""
        if kek_id == self._keystore.current_id():
            raise Conflict(f"{kek_id} is the current KEK; rotate to a new one first")
        if not self._keystore.holds(kek_id):
            raise NotFound(f"the keystore holds no KEK {kek_id!r}")
        in_use = self._read(
            lambda s: s.scalar(
                select(func.count()).select_from(ModelFile).where(ModelFile.kek_id == kek_id)
            )
        )
        if in_use:
            raise Conflict(f"{in_use} data keys still use {kek_id}; run `weightgate keys rotate`")
        last = self._read(
            lambda s: s.scalar(
                select(func.max(AuditEntry.time)).where(AuditEntry.event == "keys.rewrap")
            )
        )
        if last is not None and self._clock.now() < as_utc(last) + RETIRE_AFTER_REWRAP:
            after = (as_utc(last) + RETIRE_AFTER_REWRAP).isoformat(timespec="seconds")
            raise Conflict(
                f"data keys were re-wrapped moments ago and running gateways may still "
                f"hold their old wraps: retire {kek_id} after {after}"
            )

        def retire_if_unused(session: Session, _indices: list[int]) -> None:
            # Counted again inside the audit transaction, and retired there, so
            # the entry exists if and only if the KEK was retired (a refusal by
            # the keystore rolls the entry back). Rare enough to hold the writer.
            count = session.scalar(
                select(func.count()).select_from(ModelFile).where(ModelFile.kek_id == kek_id)
            )
            if count:
                raise Conflict(f"{count} data keys use {kek_id} again; run `keys rotate`")
            self._keystore.retire(kek_id)

        event = build_event(
            "keys.retire", time=self._clock.now(), context=context, actor=OPERATOR, kek=kek_id
        )
        self._audit.append([event], retire_if_unused)

    def _pending(self, target: str) -> int:
        return self._read(
            lambda s: int(
                s.scalar(
                    select(func.count()).select_from(ModelFile).where(ModelFile.kek_id != target)
                )
                or 0
            )
        )

    def _next_batch(self, target: str, after: str, size: int) -> list[ModelFile]:
        return self._read(
            lambda s: list(
                s.scalars(
                    select(ModelFile)
                    .where(ModelFile.kek_id != target, ModelFile.file_version > after)
                    .order_by(ModelFile.file_version)
                    .limit(size)
                )
            )
        )

    def _commit_batch(
        self,
        changes: list[_Rewrap],
        moved: Counter[str],
        target: str,
        context: RequestContext,
    ) -> None:
        def apply(session: Session, _indices: list[int]) -> None:
            for change in changes:
                result = session.execute(
                    update(ModelFile)
                    .where(
                        ModelFile.file_version == change.file_version,
                        ModelFile.kek_id == change.old_kek,
                        ModelFile.wrapped_key == change.old_wrapped,
                    )
                    .values(kek_id=target, wrapped_key=change.new_wrapped)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:  # type: ignore[attr-defined]
                    # Another rotation got there first: this batch is rolled back
                    # whole, with its entry, and the next run picks up what is left.
                    raise Conflict("data keys changed during the rotation; run it again")

        event = build_event(
            "keys.rewrap",
            time=self._clock.now(),
            context=context,
            actor=OPERATOR,
            kek={"target": target, "from": dict(sorted(moved.items()))},
            data_keys=len(changes),
        )
        self._audit.append([event], apply)

    def _read(self, query: Callable[[Session], T]) -> T:
        return read(self._sessions, query)


def _natural(kek_id: str) -> tuple[str, int, str]:
    """local:v2 before local:v10."""
    scheme, _, rest = kek_id.partition(":")
    number = rest[1:] if rest.startswith("v") else ""
    return (scheme, int(number) if number.isdigit() else 0, rest)
