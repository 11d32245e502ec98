"""The grant use case: identity -> policy -> audit -> keys and URLs.

The order is the security argument. Everything that can fail (the model, the
keystore, the recipient key) is checked first; the decision is made by the
pure policy engine; the decision and the grant are committed to the audit log
in one durable transaction; and only then do wrapped keys and URLs leave.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

import anyio
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from gateway import metrics
from gateway.audit.events import RequestContext, build_event
from gateway.audit.log import AuditLog
from gateway.audit.sequencer import Change, Insert
from gateway.catalog import Catalog, PublishedFile
from gateway.clock import Clock, as_utc
from gateway.context.geoip import GeoIp
from gateway.context.policy_source import PolicySource
from gateway.crypto.data_key_cache import CachedKeystore
from gateway.crypto.envelope import GrantBinding, GrantSealer, choose_envelope
from gateway.crypto.keyrelease import SUITE_NAMES, X25519, kem_of, parse_recipient_key
from gateway.errors import (
    Forbidden,
    Gone,
    InvalidInput,
    NotFound,
    PolicyDenied,
    QuotaExceeded,
    Unavailable,
)
from gateway.exemptions import ExemptionService
from gateway.identity.principal import Principal, Role
from gateway.names import check_file_path, check_model_id, check_revision
from gateway.policy.decision import DecisionRequest, decide
from gateway.policy.screening import ScreeningHit
from gateway.quotas import QuotaService
from gateway.screening import ScreeningService
from gateway.state.database import read
from gateway.state.tables import Grant
from gateway.storage.health import StorageHealth
from gateway.storage.interfaces import BlobStore, StoredObject

STORAGE_URL_LIFETIME = timedelta(seconds=60)
# The most grants ``recent`` lists at once.
MAX_RECENT = 500


@dataclass(frozen=True)
class GrantRequest:
    model: str
    revision: str | None
    files: list[str] | None
    recipient_key: str
    recipient_kem: str = X25519
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    envelopes: tuple[str, ...] = ()  # as the client announced them; none: v1


@dataclass(frozen=True)
class IssuedGrant:
    body: dict[str, Any]


@dataclass(frozen=True)
class _PreparedGrant:
    """A grant decided and sealed, waiting for its audit entry; nothing of it has left."""

    principal: Principal
    request: GrantRequest
    context: RequestContext
    model_id: str
    first_try: bool
    event: dict[str, Any]
    change: Change
    body: dict[str, Any]  # the response, but for its audit index
    tier: int

    def issue(self, index: int) -> IssuedGrant:
        """The entry is durable: the keys and URLs may leave."""
        metrics.DECISIONS.labels("allow", str(self.tier)).inc()
        return IssuedGrant({**self.body, "audit_index": index})


class GrantService:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        catalog: Catalog,
        audit: AuditLog,
        keystore: CachedKeystore,
        blobs: BlobStore,
        storage: StorageHealth,
        policy: PolicySource,
        exemptions: ExemptionService,
        quotas: QuotaService,
        geoip: GeoIp,
        screening: ScreeningService | None,
        clock: Clock,
        public_url: str,
        url_key: bytes,
        audit_hash_key: bytes,
        grant_ttl: timedelta,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._audit = audit
        self._keystore = keystore
        self._blobs = blobs
        self._storage = storage
        self._policy = policy
        self._exemptions = exemptions
        self._quotas = quotas
        self._geoip = geoip
        self._screening = screening
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._url_mac = hmac.new(url_key, digestmod=hashlib.sha256)
        self._hash_key = audit_hash_key
        self._ttl = grant_ttl

    def request_grant(
        self, principal: Principal, request: GrantRequest, context: RequestContext
    ) -> IssuedGrant:
        """Decide, audit and issue a grant, waiting for its audit entry in this thread."""
        prepared = self._prepare(principal, request, context)
        try:
            [index] = self._audit.append([prepared.event], prepared.change)
        except (QuotaExceeded, _ExemptionWithdrawn) as refusal:
            return self._refused_at_commit(prepared, refusal)
        return prepared.issue(index)

    async def request_grant_awaiting(
        self, principal: Principal, request: GrantRequest, context: RequestContext
    ) -> IssuedGrant:
        """As ``request_grant``, for the event loop: the decision and the sealing
        run in a worker thread, and the audit commit is awaited, so no thread is
        held while the batch commits and a worker's every connection can have a
        grant in the batch.
        """
        prepared = await anyio.to_thread.run_sync(self._prepare, principal, request, context)
        try:
            [index] = await self._audit.append_awaiting([prepared.event], prepared.change)
        except (QuotaExceeded, _ExemptionWithdrawn) as refusal:
            # Rare, and settled with blocking reads and appends: off the loop.
            return await anyio.to_thread.run_sync(self._refused_at_commit, prepared, refusal)
        return prepared.issue(index)

    def _refused_at_commit(
        self, prepared: _PreparedGrant, refusal: QuotaExceeded | _ExemptionWithdrawn
    ) -> IssuedGrant:
        """The grant's transaction refused it: audit the quota refusal, or decide again."""
        if isinstance(refusal, QuotaExceeded):
            self._quotas.refuse(
                prepared.principal,
                model=prepared.model_id,
                context=prepared.context,
                refusal=refusal.detail["refusal"],
            )
        if not prepared.first_try:
            raise Unavailable("the exemptions changed while deciding; ask again") from None
        # Decided on a remembered list another replica has since changed:
        # decide again on a fresh one (a denial now, audited as such).
        self._exemptions.forget(prepared.principal.org)
        again = self._prepare(
            prepared.principal, prepared.request, prepared.context, first_try=False
        )
        try:
            [index] = self._audit.append([again.event], again.change)
        except (QuotaExceeded, _ExemptionWithdrawn) as second:
            return self._refused_at_commit(again, second)
        return again.issue(index)

    def _prepare(
        self,
        principal: Principal,
        request: GrantRequest,
        context: RequestContext,
        *,
        first_try: bool = True,
    ) -> _PreparedGrant:
        """Everything before the audit commit: a denial is audited and raised here."""
        recipient = parse_recipient_key(request.recipient_key, request.recipient_kem)
        envelope = choose_envelope(request.envelopes)
        model = self._catalog.model(check_model_id(request.model))
        if not model.revisions:
            raise NotFound(f"{model.id} has no published revision")
        revision = check_revision(request.revision) if request.revision else model.revisions[-1]
        if revision not in model.revisions:
            raise NotFound(f"{model.id} has no revision {revision!r}")
        files = self._select_files(model.id, revision, request)
        granted_bytes = sum(f.plaintext_size for f in files)
        self._quotas.check(principal, model.id, granted_bytes, context)
        org = self._catalog.org(principal.org)
        now = self._clock.now()
        hits: tuple[ScreeningHit, ...] = ()
        if org is not None and self._screening is not None:
            # Stored when the organisation or the list last changed; screened
            # here only if the list in force is newer than the stored result.
            hits = self._screening.hits_for(org.id, [org.name, *org.aliases])
        decision = decide(
            DecisionRequest(
                location=principal.country,
                org_hq=org.hq if org else None,
                parent_hq=org.parent_hq if org else None,
                ip_country=self._geoip.country_of(context.client_address),
                eccn=model.eccn,
                on=now.date(),
                classification_basis=model.classification_basis,
                screening_hits=hits,
                org_id=principal.org,
                model_id=model.id,
                exemptions=self._exemptions.active_for(principal.org) if org else (),
            ),
            self._policy.current,
        )
        common: dict[str, Any] = {
            "model": model.id,
            "revision": revision,
            "decision": decision.to_dict(),
        }
        if not decision.allowed:
            event = build_event(
                "grant.deny",
                time=now,
                context=context,
                principal=principal,
                hash_key=self._hash_key,
                **common,
            )
            [index] = self._audit.append([event])
            metrics.DECISIONS.labels("deny", str(decision.tier)).inc()
            raise PolicyDenied(
                f"export of {model.id} to this requester is denied by {decision.policy}",
                decision=decision.to_dict(),
                audit_index=index,
            )

        # A grant is a promise of downloads: none is made while the store is
        # known to be down (503 with a Retry-After). This reads a flag that the
        # storage probe and every storage call keep; no network call here.
        self._storage.require_available()
        grant_id = new_grant_id()
        expires_at = now + self._ttl
        # Keys are unwrapped and sealed before the audit append so a keystore
        # failure leaves no "allowed" entry behind, yet nothing leaves until
        # the entry is durable.
        sealer = GrantSealer(
            envelope,
            recipient,
            GrantBinding(grant_id, principal.subject, model.id, revision, expires_at),
        )
        # The first refusal ends the grant, so one count around the loop is exact.
        with metrics.keystore_call("unwrap"):
            data_keys = self._keystore.unwrap_many([f.unwrap_request for f in files])
        wrapped = sealer.seal_file_keys(
            [(key, f.path, f.file_version) for key, f in zip(data_keys, files, strict=True)]
        )
        listed = self._file_entries(grant_id, files, wrapped)
        paths = [f.path for f in files]

        grant_row = {
            "id": grant_id,
            "issuer": principal.issuer,
            "subject": principal.subject,
            "org_id": principal.org,
            "model_id": model.id,
            "revision": revision,
            "paths": json.dumps(paths),
            "created_at": now,
            "expires_at": expires_at,
            "revoked_at": None,
            "exemption_id": decision.exemption_id,
            "granted_bytes": granted_bytes,
        }

        def checked_insert(session: Session, indices: list[int]) -> None:
            # Counted again here, serialised with every other append, so
            # concurrent grants cannot overshoot a quota between check and insert.
            self._quotas.enforce(session, principal, granted_bytes)
            # The decision may have used a remembered list of exemptions: the
            # one it rests on is read again here, serialised with any revocation.
            if decision.exemption_id is not None and not self._exemptions.still_in_force(
                session, decision.exemption_id
            ):
                raise _ExemptionWithdrawn(decision.exemption_id)
            session.execute(insert(Grant), [{**grant_row, "audit_index": indices[0]}])

        # Most grants need no check inside the transaction: their row goes in
        # with the batch's bulk inserts.
        change: Change = (
            checked_insert
            if decision.exemption_id is not None or self._quotas.applies(principal)
            else Insert(Grant, lambda indices: [{**grant_row, "audit_index": indices[0]}])
        )

        event = build_event(
            "grant.allow",
            time=now,
            context=context,
            principal=principal,
            hash_key=self._hash_key,
            grant_id=grant_id,
            expires_at=expires_at.isoformat(),
            files=paths,
            **common,
        )
        body = {
            "id": grant_id,
            "subject": principal.subject,
            "model": model.id,
            "revision": revision,
            "eccn": model.eccn.value,
            "expires_at": expires_at.isoformat(),
            "key_wrapping": SUITE_NAMES[kem_of(recipient)],
            "envelope": sealer.version,
            "grant_key": (
                None
                if sealer.sealed_grant_key is None
                else base64.b64encode(sealer.sealed_grant_key).decode()
            ),
            "decision": common["decision"],
            "files": listed,
        }
        return _PreparedGrant(
            principal, request, context, model.id, first_try, event, change, body, decision.tier
        )

    def _select_files(
        self, model_id: str, revision: str, request: GrantRequest
    ) -> list[PublishedFile]:
        """The files asked for: an explicit list, or every file the globs let through."""
        files = self._catalog.files(model_id, revision)
        wanted = request.files
        if wanted is not None:
            by_path = {f.path: f for f in files}
            # A path that is a published one is well formed; only the others are
            # checked, so that a malformed one is refused as such.
            missing = [p for p in wanted if p not in by_path and check_file_path(p)]
            if missing:
                raise NotFound(f"{model_id}@{revision} has no file {missing[0]!r}")
            if not wanted:
                raise InvalidInput("files, when given, must name at least one file")
            files = [by_path[p] for p in dict.fromkeys(wanted)]
        if request.include:
            files = [f for f in files if any(fnmatchcase(f.path, g) for g in request.include)]
        files = [f for f in files if not any(fnmatchcase(f.path, g) for g in request.exclude)]
        if not files:
            raise NotFound(f"no file of {model_id}@{revision} matches the include/exclude patterns")
        return files

    def _file_entries(
        self, grant_id: str, files: list[PublishedFile], wrapped: list[bytes]
    ) -> list[dict[str, Any]]:
        """Each file as the response lists it; what the files share is written once."""
        url = f"{self._public_url}/v1/grants/{grant_id}/files/"
        # The capability's keyed state, past the grant id: one copy and update a file.
        # (A copy, not the one-shot hmac.digest(), which lets go of the GIL on
        # every call: in a busy thread pool, each release queues the thread again.)
        mac = self._url_mac.copy()
        mac.update(_capability_prefix(grant_id))
        entries = []
        for row, key in zip(files, wrapped, strict=True):
            capability = mac.copy()
            capability.update(row.path.encode())
            entries.append(
                {
                    "path": row.path,
                    "size": row.plaintext_size,
                    "ciphertext_size": row.ciphertext_size,
                    "sha256": row.plaintext_sha256,
                    "algorithm": row.algorithm,
                    "file_version": row.file_version,
                    "header": row.header_base64,
                    "wrapped_key": base64.b64encode(key).decode(),
                    "url": f"{url}{row.url_path}?cap={capability.hexdigest()}",
                }
            )
        return entries

    def _capability(self, grant_id: str, path: str) -> str:
        mac = self._url_mac.copy()
        mac.update(_capability_prefix(grant_id) + path.encode())
        return mac.hexdigest()

    def _load_grant(self, grant_id: str) -> Grant:
        grant: Grant | None = read(self._sessions, lambda s: s.get(Grant, grant_id))
        if grant is None:
            raise NotFound("no such grant")
        return grant

    def _state(self, grant: Grant) -> str:
        if grant.revoked_at is not None:
            return "revoked"
        return "expired" if self._clock.now() >= as_utc(grant.expires_at) else "active"

    def storage_redirect(
        self, grant_id: str, path: str, capability: str, context: RequestContext
    ) -> str:
        """Re-check the grant and return a storage URL valid for at most 60 seconds."""
        if not hmac.compare_digest(self._capability(grant_id, path).encode(), capability.encode()):
            raise Forbidden("this file URL is not valid")
        grant = self._load_grant(grant_id)
        state = self._state(grant)
        if state != "active":
            raise Gone(f"grant {grant_id} has {state}", state=state)
        if grant.exemption_id is not None and not self._exemptions.is_active(grant.exemption_id):
            # The door it came through was shut: its URLs stop working at once.
            raise Gone(
                f"grant {grant_id} rests on an exemption that was revoked or expired",
                state="revoked",
            )
        if path not in json.loads(grant.paths):
            raise NotFound("this grant does not cover that file")
        row = next(f for f in self._catalog.files(grant.model_id, grant.revision) if f.path == path)
        now = self._clock.now()
        url_expires = min(now + STORAGE_URL_LIFETIME, as_utc(grant.expires_at))
        # Signed first (which checks the store is there), logged second,
        # released last: the log never shows a redirect that was not given,
        # and nothing is given that the log does not show.
        url = self._blobs.download_url(
            StoredObject(row.object_key, row.object_version, row.ciphertext_size), url_expires
        )
        event = build_event(
            "download.redirect",
            time=now,
            context=context,
            actor={"subject": grant.subject, "org": grant.org_id},
            grant_id=grant_id,
            model=grant.model_id,
            revision=grant.revision,
            path=path,
        )
        self._audit.append([event])
        return url

    def revoke(
        self, principal: Principal, grant_id: str, context: RequestContext
    ) -> dict[str, Any]:
        """Revoke a grant: its file URLs answer 410 from the next request on."""
        grant = self._load_grant(grant_id)
        is_owner = _owns(principal, grant)
        if not is_owner and not principal.has_any(Role.ADMIN):
            raise NotFound("no such grant")
        if grant.revoked_at is not None:
            return self.grant_status(principal, grant_id)
        now = self._clock.now()

        def mark(session: Session, _indices: list[int]) -> None:
            row = session.get(Grant, grant_id)
            if row is not None:
                row.revoked_at = now

        event = build_event(
            "grant.revoke",
            time=now,
            context=context,
            principal=principal,
            hash_key=self._hash_key,
            grant_id=grant_id,
            model=grant.model_id,
            revision=grant.revision,
        )
        self._audit.append([event], mark)
        return self.grant_status(principal, grant_id)

    def grant_status(self, principal: Principal, grant_id: str) -> dict[str, Any]:
        grant = self._load_grant(grant_id)
        is_owner = _owns(principal, grant)
        if not is_owner and not principal.has_any(Role.ADMIN):
            # Not 403: whether someone else's grant exists is not ours to say.
            raise NotFound("no such grant")
        return {
            "id": grant.id,
            "subject": grant.subject,
            "model": grant.model_id,
            "revision": grant.revision,
            "files": json.loads(grant.paths),
            "expires_at": as_utc(grant.expires_at).isoformat(),
            "state": self._state(grant),
            "audit_index": grant.audit_index,
        }

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The newest grants, newest first, for the console's reviewers (at most ``MAX_RECENT``).

        Only what a reviewer needs to judge and revoke them: no file URLs or
        keys, which only the grant's holder ever receives.
        """
        if not 1 <= limit <= MAX_RECENT:
            raise InvalidInput(f"limit must be between 1 and {MAX_RECENT}")
        query = select(Grant).order_by(Grant.created_at.desc(), Grant.id).limit(limit)
        grants = read(self._sessions, lambda s: list(s.scalars(query)))
        return [
            {
                "id": grant.id,
                "subject": grant.subject,
                "issuer": grant.issuer,
                "org": grant.org_id,
                "model": grant.model_id,
                "revision": grant.revision,
                "files": len(json.loads(grant.paths)),
                "created_at": as_utc(grant.created_at).isoformat(),
                "expires_at": as_utc(grant.expires_at).isoformat(),
                "state": self._state(grant),
                "exemption_id": grant.exemption_id,
            }
            for grant in grants
        ]


class _ExemptionWithdrawn(Exception):
    """The exemption a decision relied on is no longer in force; its grant was rolled back."""


def _capability_prefix(grant_id: str) -> bytes:
    """A file URL's capability is the URL key's HMAC of this and the file's path."""
    return f"grant-file\x00{grant_id}\x00".encode()


def new_grant_id() -> str:
    """128 random bits in hex: never starting with "-", which a CLI would read as an option."""
    return secrets.token_hex(16)


def _owns(principal: Principal, grant: Grant) -> bool:
    """The same person: the same issuer's subject, in the same organisation."""
    return (
        grant.issuer == principal.issuer
        and grant.subject == principal.subject
        and grant.org_id == principal.org
    )
