"""``weightgate gc`` against both stores: it deletes what a killed publish left, and nothing else.

The stores are the real local directory and moto's S3 server (see conftest);
the catalog and audit log are real SQLite. "Now" is passed in, relative to
when the store says each object was written.
"""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway import gc
from gateway.bootstrap import Services
from gateway.catalog import Catalog
from gateway.errors import Unavailable
from gateway.policy.pack import Eccn
from gateway.storage.interfaces import ListedBlob
from tests.conftest import operator
from tests.storage.conftest import Backend

HOUR = timedelta(hours=1)


def _published(services: Services, backend: Backend, model_dir: Path) -> set[tuple[str, str]]:
    catalog = Catalog(
        services.sessions,
        audit=services.audit,
        keystore=services.keystore,
        blobs=backend.store,
        clock=services.clock,
    )
    rows = catalog.publish(
        model_dir,
        model_id="acme/atlas",
        revision="v1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    return {(r.object_key, r.object_version) for r in rows}


def _orphan(backend: Backend) -> ListedBlob:
    """Ciphertext as a publish killed before registering leaves it."""
    key = f"objects/{uuid.uuid4().hex}"
    stored = backend.store.put(key, io.BytesIO(b"orphaned ciphertext" * 100))
    [listed] = [b for b in backend.store.list_blobs(key) if b.version == stored.version]
    return listed


def _gc_events(services: Services) -> list[dict[str, Any]]:
    entries = (e.as_dict() for e in services.audit.entries())
    return [e for e in entries if e["event"] == "storage.gc"]


def test_gc_lists_only_unreferenced_ciphertext_past_the_grace_period(
    services: Services, backend: Backend, model_dir: Path
) -> None:
    published = _published(services, backend, model_dir)
    orphan = _orphan(backend)
    backend.store.put("elsewhere/not-ours", io.BytesIO(b"someone else's"))
    later = orphan.modified + 2 * HOUR
    found = gc.find(backend.store, services.sessions, now=later, grace=HOUR)
    assert [(b.key, b.version) for b in found.deletable] == [(orphan.key, orphan.version)]
    assert found.deletable_bytes == orphan.size
    assert found.referenced == len(published)
    # A publish still running in another process: its upload is too young to touch.
    soon = gc.find(backend.store, services.sessions, now=orphan.modified + HOUR / 2, grace=HOUR)
    assert soon.deletable == [] and [b.version for b in soon.too_young] == [orphan.version]


def test_gc_delete_is_audited_and_removes_only_the_orphan(
    services: Services, backend: Backend, model_dir: Path
) -> None:
    published = _published(services, backend, model_dir)
    orphan = _orphan(backend)
    backend.store.put("elsewhere/not-ours", io.BytesIO(b"someone else's"))
    found = gc.find(backend.store, services.sessions, now=orphan.modified + 2 * HOUR, grace=HOUR)
    result = gc.delete(
        found,
        blobs=backend.store,
        sessions=services.sessions,
        audit=services.audit,
        clock=services.clock,
        context=operator(),
        grace=HOUR,
    )
    assert [b.version for b in result.deleted] == [orphan.version] and result.failed == []
    left = {(b.key, b.version) for b in backend.store.list_blobs("")}
    assert published <= left
    assert (orphan.key, orphan.version) not in left
    assert any(key == "elsewhere/not-ours" for key, _ in left)
    [event] = _gc_events(services)
    assert event["blobs"][0]["key"] == orphan.key and event["bytes"] == orphan.size


def test_blob_registered_after_listing_is_never_deleted(
    services: Services, backend: Backend, model_dir: Path
) -> None:
    # gc listed the store before a publish registered: the plan (wrongly, by
    # then) calls everything unreferenced, and delete must read again.
    published = _published(services, backend, model_dir)
    listed = list(backend.store.list_blobs("objects/"))
    stale = gc.plan(listed, set(), now=max(b.modified for b in listed) + 2 * HOUR, grace=HOUR)
    assert len(stale.deletable) == len(published)
    result = gc.delete(
        stale,
        blobs=backend.store,
        sessions=services.sessions,
        audit=services.audit,
        clock=services.clock,
        context=operator(),
        grace=HOUR,
    )
    assert result.deleted == []
    assert published <= {(b.key, b.version) for b in backend.store.list_blobs("objects/")}


class _AuditDown:
    def append(self, *_: Any, **__: Any) -> list[int]:
        raise Unavailable("the audit log is unavailable")


def test_nothing_is_deleted_when_the_deletion_cannot_be_audited(
    services: Services, backend: Backend
) -> None:
    orphan = _orphan(backend)
    found = gc.find(backend.store, services.sessions, now=orphan.modified + 2 * HOUR, grace=HOUR)
    with pytest.raises(Unavailable):
        gc.delete(
            found,
            blobs=backend.store,
            sessions=services.sessions,
            audit=_AuditDown(),  # type: ignore[arg-type]
            clock=services.clock,
            context=operator(),
            grace=HOUR,
        )
    assert orphan.version in {b.version for b in backend.store.list_blobs("objects/")}


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30m", 1800), ("6h", 21600), ("2d", 172800)]
)
def test_grace_durations(text: str, seconds: int) -> None:
    assert gc.parse_grace(text) == timedelta(seconds=seconds)
