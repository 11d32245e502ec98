"""The catalog: organisations and published models; every change is audited with it."""

from __future__ import annotations

import base64
import io
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import quote

from cryptography.cobblestone import Cobblestone256Encryptor
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway import metrics
from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.clock import Clock
from gateway.crypto.fileformat import ALGORITHM, KEY_SIZE, EncryptingReader, file_context
from gateway.crypto.keystore import Keystore
from gateway.errors import Conflict, InvalidInput, NotFound, Unavailable, WeightgateError
from gateway.names import (
    check_display_name,
    check_file_path,
    check_model_id,
    check_org_id,
    check_revision,
    did_you_mean,
)
from gateway.policy.classification import classify
from gateway.policy.countries import country_code
from gateway.policy.pack import Eccn
from gateway.recent import RecentCache
from gateway.screening import ScreeningService
from gateway.state.database import read
from gateway.state.tables import Model, ModelFile, Organisation, Revision
from gateway.storage.interfaces import BlobStore

T = TypeVar("T")
_log = logging.getLogger(__name__)
# Names a "did you mean" for an unknown model is chosen from: a bounded scan.
_SUGGEST_FROM = 10_000
# How long a revision's file rows are remembered; `keys rotate` re-wraps them in the database.
FILES_LIFETIME = timedelta(seconds=60)


@dataclass(frozen=True)
class OrgView:
    id: str
    name: str
    hq: str
    parent_hq: str | None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PublishedFile:
    """A published file's row, as the grant path reads it.

    A plain copy, not the ORM object: a 32-file grant reads some twenty
    attributes of each file, and an instrumented attribute costs several
    times a slot.
    """

    file_version: str
    model_id: str
    revision: str
    path: str
    plaintext_size: int
    ciphertext_size: int
    plaintext_sha256: str
    header: bytes
    algorithm: str
    object_key: str
    object_version: str
    # Written into every grant of the file, so worked out once, when read.
    url_path: str  # the path, percent-encoded for a URL
    header_base64: str
    # What the keystore unwraps the file's data key from: (KEK id, wrapped key, context).
    unwrap_request: tuple[str, bytes, dict[str, str]]

    @classmethod
    def of(cls, row: ModelFile) -> PublishedFile:
        return cls(
            file_version=row.file_version,
            model_id=row.model_id,
            revision=row.revision,
            path=row.path,
            plaintext_size=row.plaintext_size,
            ciphertext_size=row.ciphertext_size,
            plaintext_sha256=row.plaintext_sha256,
            header=row.header,
            algorithm=row.algorithm,
            object_key=row.object_key,
            object_version=row.object_version,
            url_path=quote(row.path),
            header_base64=base64.b64encode(row.header).decode(),
            unwrap_request=(
                row.kek_id,
                row.wrapped_key,
                key_context(row.model_id, row.revision, row.path, row.file_version),
            ),
        )


@dataclass(frozen=True)
class ModelView:
    id: str
    eccn: Eccn
    training_ops: str | None
    classification_basis: str
    revisions: tuple[str, ...]


class Catalog:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        audit: AuditLog,
        keystore: Keystore,
        blobs: BlobStore,
        clock: Clock,
        screening: ScreeningService | None = None,
    ) -> None:
        self._sessions = sessions
        # Organisations are screened in the transaction that registers or changes them.
        self._screening = screening
        self._audit = audit
        self._keystore = keystore
        self._blobs = blobs
        # Models and organisations are read on every grant: remembered for a second.
        self._orgs: RecentCache[OrgView] = RecentCache(clock, timedelta(seconds=1))
        self._models: RecentCache[ModelView] = RecentCache(clock, timedelta(seconds=1))
        # A revision's files change only when `keys rotate` re-wraps their keys:
        # every replica sees the new wraps within FILES_LIFETIME.
        self._files: RecentCache[list[PublishedFile]] = RecentCache(clock, FILES_LIFETIME)
        self._clock = clock

    # Organisations -------------------------------------------------------

    def add_org(
        self,
        org_id: str,
        *,
        name: str,
        hq: str,
        parent_hq: str | None,
        context: RequestContext,
        aliases: tuple[str, ...] = (),
        actor: dict[str, str | None] | None = None,
    ) -> OrgView:
        clean_aliases = _clean_aliases(aliases)
        org = OrgView(
            check_org_id(org_id),
            check_display_name(name, what="an organisation's name") if name.strip() else org_id,
            country_code(hq, what="headquarters"),
            None if parent_hq is None else country_code(parent_hq, what="parent headquarters"),
            clean_aliases,
        )
        if self.org(org.id) is not None:
            raise Conflict(f"organisation {org.id} already exists")
        now = self._clock.now()
        screened = self._screening.screen([org.name, *org.aliases]) if self._screening else None

        def insert(session: Session, _indices: list[int]) -> None:
            session.add(
                Organisation(
                    id=org.id,
                    name=org.name,
                    aliases=json.dumps(list(org.aliases)),
                    hq_country=org.hq,
                    parent_hq_country=org.parent_hq,
                    created_at=now,
                )
            )
            if self._screening is not None:
                session.flush()  # the organisation's row before the result that refers to it
                self._screening.store(session, org.id, screened)

        event = build_event(
            "org.add",
            time=now,
            context=context,
            actor=actor or {"subject": "operator", "org": None},
            org={
                "id": org.id,
                "name": org.name,
                "aliases": list(org.aliases),
                "hq": org.hq,
                "parent_hq": org.parent_hq,
            },
        )
        self._audit.append([event], insert)
        self._clear_recent()
        return org

    def update_org(
        self,
        org_id: str,
        *,
        name: str | None,
        hq: str | None,
        parent_hq: str | None,
        clear_parent: bool,
        aliases: tuple[str, ...] | None,
        actor: dict[str, str | None],
        context: RequestContext,
    ) -> OrgView:
        """Change an organisation; the entry records the state before and after."""
        before = self.org(org_id)
        if before is None:
            raise NotFound(f"no organisation {org_id!r}")
        after = OrgView(
            before.id,
            check_display_name(name, what="an organisation's name")
            if name and name.strip()
            else before.name,
            country_code(hq, what="headquarters") if hq is not None else before.hq,
            None
            if clear_parent
            else (
                country_code(parent_hq, what="parent headquarters")
                if parent_hq is not None
                else before.parent_hq
            ),
            _clean_aliases(aliases) if aliases is not None else before.aliases,
        )
        screened = self._screening.screen([after.name, *after.aliases]) if self._screening else None

        def store(session: Session, _indices: list[int]) -> None:
            row = session.get(Organisation, org_id)
            if row is None:
                raise NotFound(f"no organisation {org_id!r}")
            row.name, row.hq_country, row.parent_hq_country = after.name, after.hq, after.parent_hq
            row.aliases = json.dumps(list(after.aliases))
            if self._screening is not None:
                self._screening.store(session, org_id, screened)

        event = build_event(
            "org.update",
            time=self._clock.now(),
            context=context,
            actor=actor,
            org={"id": org_id, "before": _org_dict(before), "after": _org_dict(after)},
        )
        self._audit.append([event], store)
        self._clear_recent()
        return after

    def org(self, org_id: str) -> OrgView | None:
        def load() -> OrgView | None:
            row = self._read(lambda s: s.get(Organisation, org_id))
            return _org_view(row) if row else None

        return self._orgs.lookup(org_id, load)

    def orgs(self) -> list[OrgView]:
        return self._read(
            lambda s: [
                _org_view(r) for r in s.scalars(select(Organisation).order_by(Organisation.id))
            ]
        )

    # Models --------------------------------------------------------------

    def models(self) -> list[ModelView]:
        return self._read(
            lambda s: [_model_view(s, m) for m in s.scalars(select(Model).order_by(Model.id))]
        )

    def model(self, model_id: str) -> ModelView:
        view = self._find_model(model_id)
        if view is None:
            # The catalog is no secret from anyone who may ask for a model (GET /v1/models).
            ids = self._read(lambda s: list(s.scalars(select(Model.id).limit(_SUGGEST_FROM))))
            raise NotFound(f"no model {model_id!r}{did_you_mean(model_id, ids)}")
        return view

    def _find_model(self, model_id: str) -> ModelView | None:
        def load() -> ModelView | None:
            def query(session: Session) -> ModelView | None:
                model = session.get(Model, model_id)
                return None if model is None else _model_view(session, model)

            return self._read(query)

        return self._models.lookup(model_id, load)

    def files(self, model_id: str, revision: str) -> list[PublishedFile]:
        return (
            self._files.lookup(
                (model_id, revision),
                # Not remembered while empty: the revision may be about to be published.
                lambda: (
                    self._read(
                        lambda s: [
                            PublishedFile.of(row)
                            for row in s.scalars(
                                select(ModelFile)
                                .where(
                                    ModelFile.model_id == model_id, ModelFile.revision == revision
                                )
                                .order_by(ModelFile.path)
                            )
                        ]
                    )
                    or None
                ),
            )
            or []
        )

    def publish(
        self,
        directory: Path,
        *,
        model_id: str,
        revision: str,
        eccn: Eccn,
        training_ops: Decimal | None,
        context: RequestContext,
        weights_published: bool = False,
        below_frontier_reason: str | None = None,
        on_start: Callable[[int], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[ModelFile]:
        """Encrypt, store and register one revision of a model.

        The classification is checked against the facts first (see
        ``policy.classification``). A later revision may make a model
        stricter (EAR99 to 4E091), never looser. ``on_start`` is told the
        plaintext bytes to encrypt, ``progress`` each amount encrypted.

        A publish that fails or is interrupted before its revision is
        registered deletes what it had uploaded; whatever it could not delete
        is left for ``weightgate gc`` (see ``discard_uploads``).
        """
        check_model_id(model_id)
        check_revision(revision)
        classification = classify(
            declared=eccn,
            training_ops=training_ops,
            weights_published=weights_published,
            below_frontier_reason=below_frontier_reason,
        )
        sources = list(_model_files(directory))
        self._models.clear()  # decide on what the database holds now
        existing = self._find_model(model_id)
        if existing is not None and revision in existing.revisions:
            raise Conflict(f"{model_id}@{revision} is already published")
        if existing is not None and existing.eccn is Eccn.AI_MODEL_WEIGHTS and eccn is Eccn.EAR99:
            raise Conflict(f"{model_id} is classified 4E091; a revision cannot make it EAR99")
        if on_start is not None:
            on_start(sum(source.stat().st_size for source, _ in sources))
        uploaded: list[str] = []  # file versions whose upload began, finished or not
        try:
            rows = []
            for source, path in sources:
                uploaded.append(uuid.uuid4().hex)
                rows.append(
                    self._encrypt_and_store(
                        source,
                        path,
                        model_id,
                        revision,
                        file_version=uploaded[-1],
                        progress=progress,
                    )
                )
        except BaseException:
            # Nothing refers to these objects yet: the revision is registered
            # only below, so deleting them cannot break a record.
            self.discard_uploads(uploaded, registered_check=False)
            raise
        now = self._clock.now()
        ops = None if training_ops is None else str(training_ops)

        def register(session: Session, _indices: list[int]) -> None:
            model = session.get(Model, model_id)
            if model is None:
                model = Model(id=model_id, created_at=now)
                session.add(model)
            model.eccn = classification.eccn.value
            model.training_ops = ops
            model.weights_published = weights_published
            model.classification_basis = classification.basis
            session.flush()
            session.add(Revision(model_id=model_id, revision=revision, published_at=now))
            session.add_all(rows)

        event = build_event(
            "model.publish",
            time=now,
            context=context,
            actor={"subject": "operator", "org": None},
            model=model_id,
            revision=revision,
            classification={"eccn": classification.eccn.value, "basis": classification.basis},
            training_ops=ops,
            files=[
                {"path": r.path, "size": r.plaintext_size, "sha256": r.plaintext_sha256}
                for r in rows
            ],
        )
        try:
            self._audit.append([event], register)
        except Exception:
            # A failed append commits nothing, but a commit whose answer was
            # lost would: the database, not the error, says which happened.
            self.discard_uploads(uploaded, registered_check=True)
            raise
        # An interrupt while the append is queued is not cleaned up here: the
        # audit writer may still commit it. ``weightgate gc`` finds the objects
        # later if it did not, and leaves them if it did.
        self._clear_recent()
        return rows

    def discard_uploads(self, file_versions: list[str], *, registered_check: bool) -> None:
        """Best effort: delete every stored version of these uploads; never raises.

        With ``registered_check``, nothing is deleted unless the database
        answers that no file row names any of them. What is left behind is
        unreferenced ciphertext that ``weightgate gc`` lists and deletes.
        """
        if not file_versions:
            return
        try:
            if registered_check and self._read(
                lambda s: s.scalar(
                    select(ModelFile.file_version)
                    .where(ModelFile.file_version.in_(file_versions))
                    .limit(1)
                )
            ):
                return
            for file_version in file_versions:
                key = f"objects/{file_version}"
                for blob in list(self._blobs.list_blobs(key)):
                    if blob.key == key:
                        self._blobs.delete(blob)
        except WeightgateError as exc:
            _log.warning(
                "could not delete the objects of an unfinished publish (%s); "
                "`weightgate gc` lists and deletes them",
                exc.message,
            )

    def _encrypt_and_store(
        self,
        source: Path,
        path: str,
        model_id: str,
        revision: str,
        *,
        file_version: str,
        progress: Callable[[int], None] | None,
    ) -> ModelFile:
        data_key = _new_data_key()
        context = file_context(
            model=model_id, revision=revision, path=path, file_version=file_version
        )
        with source.open("rb") as opened:
            plain: BinaryIO = (
                opened if progress is None else io.BufferedReader(_Counted(opened, progress))
            )
            sealed = EncryptingReader(data_key, context, plain)
            stored = self._blobs.put(f"objects/{file_version}", io.BufferedReader(sealed, 1 << 20))
            encrypted = sealed.result()
        if stored.size != encrypted.ciphertext_size:
            raise Unavailable(f"storage kept {stored.size} of {encrypted.ciphertext_size} bytes")
        with metrics.keystore_call("wrap"):
            kek_id, wrapped = self._keystore.wrap(
                data_key, key_context(model_id, revision, path, file_version)
            )
        return ModelFile(
            file_version=file_version,
            model_id=model_id,
            revision=revision,
            path=path,
            plaintext_size=encrypted.plaintext_size,
            ciphertext_size=encrypted.ciphertext_size,
            plaintext_sha256=encrypted.plaintext_sha256,
            header=encrypted.header,
            algorithm=ALGORITHM,
            object_key=stored.key,
            object_version=stored.version,
            kek_id=kek_id,
            wrapped_key=wrapped,
        )

    def _clear_recent(self) -> None:
        self._orgs.clear()
        self._models.clear()

    def _read(self, query: Callable[[Session], T]) -> T:
        return read(self._sessions, query)


def _model_view(session: Session, model: Model) -> ModelView:
    revisions = session.scalars(
        select(Revision.revision)
        .where(Revision.model_id == model.id)
        .order_by(Revision.published_at)
    )
    return ModelView(
        model.id, Eccn(model.eccn), model.training_ops, model.classification_basis, tuple(revisions)
    )


def _clean_aliases(aliases: tuple[str, ...]) -> tuple[str, ...]:
    clean = tuple(
        dict.fromkeys(check_display_name(a, what="an alias") for a in aliases if a.strip())
    )
    if len(clean) > 50:
        raise InvalidInput("at most 50 aliases")
    return clean


def _org_dict(org: OrgView) -> dict[str, Any]:
    return {
        "name": org.name,
        "hq": org.hq,
        "parent_hq": org.parent_hq,
        "aliases": list(org.aliases),
    }


def _org_view(row: Organisation) -> OrgView:
    return OrgView(
        row.id, row.name, row.hq_country, row.parent_hq_country, tuple(json.loads(row.aliases))
    )


def key_context(model_id: str, revision: str, path: str, file_version: str) -> dict[str, str]:
    """What a wrapped data key is bound to in the keystore (its associated data)."""
    return {"model": model_id, "revision": revision, "path": path, "file_version": file_version}


def _new_data_key() -> bytes:
    key = Cobblestone256Encryptor.generate_key()
    if len(key) != KEY_SIZE:
        raise Unavailable("the encryption library returned a data key of the wrong size")
    return key


class _Counted(io.RawIOBase):
    """A plaintext file that reports each amount read: publish's progress."""

    def __init__(self, source: io.BufferedReader, progress: Callable[[int], None]) -> None:
        super().__init__()
        self._source = source
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._source.readinto(buffer)
        if count:
            self._progress(count)
        return count or 0


def _model_files(directory: Path) -> Iterator[tuple[Path, str]]:
    if not directory.is_dir():
        raise InvalidInput(f"{directory} is not a directory")
    found = False
    for source in sorted(directory.rglob("*")):
        relative = source.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts) or not source.is_file():
            continue
        found = True
        yield source, check_file_path(relative.as_posix())
    if not found:
        raise InvalidInput(f"{directory} holds no files to publish")
