"""A publish that fails leaves no ciphertext behind, and never deletes ciphertext a record names.

The stores are the real local one and moto's S3 server (see conftest), the
database real SQLite. Faults are
injected by wrapping the real store and audit log, because a full disk or a
commit whose answer is lost cannot be produced on demand otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from gateway.audit.log import AuditLog
from gateway.audit.sequencer import Change
from gateway.bootstrap import Services
from gateway.catalog import Catalog
from gateway.errors import NotFound, Unavailable
from gateway.policy.pack import Eccn
from gateway.storage.interfaces import BlobStore, ListedBlob, StoredObject
from tests.conftest import operator
from tests.storage.conftest import Backend


class _FillsUp:
    """The real store, which runs out of space on upload number ``fails_on``."""

    def __init__(self, store: BlobStore, fails_on: int) -> None:
        self._store = store
        self._fails_on = fails_on
        self.puts = 0

    def put(self, key: str, source: BinaryIO) -> StoredObject:
        self.puts += 1
        if self.puts == self._fails_on:
            source.read(100_000)  # part of it went out before the disk filled
            raise Unavailable("local storage is not writable: No space left on device")
        return self._store.put(key, source)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class _AnswerLost:
    """The real audit log, whose commit succeeds but whose answer never arrives."""

    def __init__(self, audit: AuditLog, *, commits: bool) -> None:
        self._audit = audit
        self._commits = commits

    def append(self, events: Sequence[Mapping[str, Any]], change: Change | None = None) -> None:
        if self._commits:
            self._audit.append(events, change)
        raise Unavailable("the audit log did not answer")


def _catalog(services: Services, blobs: Any = None, audit: Any = None) -> Catalog:
    return Catalog(
        services.sessions,
        audit=audit or services.audit,
        keystore=services.keystore,
        blobs=blobs or services.blobs,
        clock=services.clock,
    )


def _publish(catalog: Catalog, model_dir: Path, **extra: Any) -> Any:
    return catalog.publish(
        model_dir,
        model_id="acme/atlas",
        revision="v1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
        **extra,
    )


def _stored(services: Services) -> list[ListedBlob]:
    return list(services.blobs.list_blobs("objects/"))


def test_storage_full_half_way_leaves_no_ciphertext_and_no_model(
    services: Services, backend: Backend, model_dir: Path
) -> None:
    files = len([p for p in model_dir.rglob("*") if p.is_file()])
    assert files >= 3
    store = _FillsUp(backend.store, fails_on=3)
    with pytest.raises(Unavailable, match="No space left"):
        _publish(_catalog(services, blobs=store), model_dir)
    assert store.puts == 3, "two files were stored before the failure"
    assert list(backend.store.list_blobs("")) == []
    with pytest.raises(NotFound):
        services.catalog.model("acme/atlas")


def test_audit_log_down_at_registration_leaves_no_ciphertext(
    services: Services, model_dir: Path
) -> None:
    with pytest.raises(Unavailable):
        _publish(_catalog(services, audit=_AnswerLost(services.audit, commits=False)), model_dir)
    assert _stored(services) == []


def test_cleanup_never_deletes_ciphertext_a_committed_record_names(
    services: Services, model_dir: Path
) -> None:
    # The append committed but its answer was lost: the revision is
    # registered, so deleting its objects would break every grant of it.
    with pytest.raises(Unavailable):
        _publish(_catalog(services, audit=_AnswerLost(services.audit, commits=True)), model_dir)
    files = services.catalog.files("acme/atlas", "v1")
    stored = {(b.key, b.version) for b in _stored(services)}
    assert files
    assert stored == {(f.object_key, f.object_version) for f in files}


def test_progress_counts_every_plaintext_byte_once(services: Services, model_dir: Path) -> None:
    totals: list[int] = []
    advanced: list[int] = []
    rows = _publish(services.catalog, model_dir, on_start=totals.append, progress=advanced.append)
    plaintext = sum(r.plaintext_size for r in rows)
    assert totals == [plaintext]
    assert sum(advanced) == plaintext
