"""Finding and deleting ciphertext that no published file names: what a killed publish left.

A publish uploads each file's ciphertext first and registers the revision
last, in one audited transaction. A publish that fails or is interrupted
deletes its own uploads (``Catalog.publish``), but a process killed outright
cannot: its objects stay in storage, unreferenced. ``weightgate gc`` lists
them and, asked to, deletes them.

Three rules keep it from harming anything:

- only keys of the shape publish writes (``objects/<32 hex>``) are looked at,
  so nothing else sharing the bucket or directory is ever touched;
- a version any ``model_files`` row names is never deleted, and the
  references are read again just before deleting;
- nothing younger than the grace period is deleted, so the uploads of a
  publish still running in another process are left alone. A publish
  registers its files only at its end, so the grace period must be longer
  than the longest publish; the default is a day.

``plan`` decides and does no I/O; ``find`` and ``delete`` are the edges.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.errors import InvalidInput, WeightgateError
from gateway.state.database import read
from gateway.state.tables import ModelFile
from gateway.storage.interfaces import BlobStore, ListedBlob

OBJECTS_PREFIX = "objects/"
_PUBLISHED_KEY = re.compile(r"^objects/[0-9a-f]{32}$")
DEFAULT_GRACE = timedelta(days=1)
# Blobs named in one audit entry: a store full of leftovers makes several
# entries of bounded size rather than one unbounded one.
AUDIT_BATCH = 500

Reference = tuple[str, str]  # (object key, object version)


@dataclass(frozen=True)
class GcPlan:
    deletable: list[ListedBlob]  # unreferenced and older than the grace period
    too_young: list[ListedBlob] = field(default_factory=list)  # unreferenced, within it
    referenced: int = 0

    @property
    def deletable_bytes(self) -> int:
        return sum(blob.size for blob in self.deletable)


def plan(
    listed: Iterable[ListedBlob], referenced: set[Reference], *, now: datetime, grace: timedelta
) -> GcPlan:
    """Which listed blobs may go: unreferenced, of publish's key shape, and old enough."""
    deletable: list[ListedBlob] = []
    too_young: list[ListedBlob] = []
    kept = 0
    for blob in listed:
        if not _PUBLISHED_KEY.fullmatch(blob.key):
            continue
        if blob.complete and (blob.key, blob.version) in referenced:
            kept += 1
        elif now - blob.modified < grace:
            too_young.append(blob)
        else:
            deletable.append(blob)
    return GcPlan(deletable, too_young, kept)


def references(sessions: sessionmaker[Session]) -> set[Reference]:
    """Every (key, version) a published file names."""

    def query(session: Session) -> set[Reference]:
        rows = session.execute(select(ModelFile.object_key, ModelFile.object_version))
        return {(key, version) for key, version in rows}

    return read(sessions, query)


def find(
    blobs: BlobStore, sessions: sessionmaker[Session], *, now: datetime, grace: timedelta
) -> GcPlan:
    # Listed before the references are read: a revision registered in
    # between is then seen as referencing what was listed.
    listed = list(blobs.list_blobs(OBJECTS_PREFIX))
    return plan(listed, references(sessions), now=now, grace=grace)


@dataclass(frozen=True)
class GcResult:
    deleted: list[ListedBlob]
    failed: list[tuple[ListedBlob, str]]


def delete(
    found: GcPlan,
    *,
    blobs: BlobStore,
    sessions: sessionmaker[Session],
    audit: AuditLog,
    clock: Clock,
    context: RequestContext,
    grace: timedelta,
    on_deleted: Callable[[ListedBlob], None] | None = None,
) -> GcResult:
    """Delete what ``found`` lists, each batch audited before any of it is deleted.

    If the audit log cannot take the entry, nothing in that batch is deleted
    (Unavailable). A blob that became referenced since ``find`` is skipped.
    """
    still_referenced = references(sessions)
    doomed = [b for b in found.deletable if (b.key, b.version) not in still_referenced]
    deleted: list[ListedBlob] = []
    failed: list[tuple[ListedBlob, str]] = []
    for start in range(0, len(doomed), AUDIT_BATCH):
        batch = doomed[start : start + AUDIT_BATCH]
        event = build_event(
            "storage.gc",
            time=clock.now(),
            context=context,
            actor={"subject": "operator", "org": None},
            grace_seconds=int(grace.total_seconds()),
            bytes=sum(b.size for b in batch),
            blobs=[
                {
                    "key": b.key,
                    "version": b.version,
                    "size": b.size,
                    "modified": b.modified.isoformat(),
                    "unfinished_upload": not b.complete,
                }
                for b in batch
            ],
        )
        audit.append([event])
        for blob in batch:
            try:
                blobs.delete(blob)
            except WeightgateError as exc:
                failed.append((blob, exc.message))
                continue
            deleted.append(blob)
            if on_deleted is not None:
                on_deleted(blob)
    return GcResult(deleted, failed)


def parse_grace(text: str) -> timedelta:
    """``90``, ``90s``, ``30m``, ``6h`` or ``2d``."""
    match = re.fullmatch(r"(\d{1,9})([smhd]?)", text.strip())
    if match is None:
        raise InvalidInput(f"--grace must be a duration like 30m, 6h or 2d, not {text!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]
    return timedelta(seconds=int(match[1]) * unit)
