"""The composition root: settings in, services out. Nothing is built at import time."""

from __future__ import annotations

import base64
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, inspect, make_url, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway import metrics
from gateway.audit.anchors import AnchorStore, open_anchor_store
from gateway.audit.events import RequestContext
from gateway.audit.leadership import leadership_for
from gateway.audit.log import AuditLog
from gateway.audit.publisher import CheckpointPublisher
from gateway.audit.rejections import RejectionLedger
from gateway.catalog import Catalog
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.context.geoip import GeoIp, MaxMindGeoIp, NoGeoIp
from gateway.context.policy_source import PolicySource
from gateway.crypto import kms_keystore
from gateway.crypto.data_key_cache import CachedKeystore
from gateway.crypto.keyring import GatewayKeys
from gateway.crypto.keystore import Keystore, LocalKeystore, MigratingKeystore
from gateway.errors import InvalidInput, NotFound, Unavailable, WeightgateError
from gateway.exemptions import ExemptionService
from gateway.identity import dev_issuer
from gateway.identity.issuers import load_issuers_file
from gateway.identity.replay import DatabaseReplayGuard
from gateway.identity.tokens import TokenVerifier
from gateway.notify import WebhookNotifier
from gateway.policy.pack import load_pack
from gateway.quotas import QuotaService
from gateway.screening import ScreeningService
from gateway.service import GrantService
from gateway.state.database import make_engine, migrate, session_factory
from gateway.storage import s3
from gateway.storage.health import MonitoredBlobStore, StorageHealth, StorageProbe
from gateway.storage.interfaces import BlobStore
from gateway.storage.local import LocalBlobStore


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: Engine
    sessions: sessionmaker[Session]
    policy: PolicySource
    geoip: GeoIp
    screening: ScreeningService
    trusted_proxies: tuple[IPNetwork, ...]
    witnesses: dict[str, Ed25519PublicKey]
    keys: GatewayKeys
    keystore: CachedKeystore
    blobs: BlobStore
    storage_health: StorageHealth
    storage_probe: StorageProbe
    audit: AuditLog
    anchors: AnchorStore
    publisher: CheckpointPublisher
    rejections: RejectionLedger
    catalog: Catalog
    exemptions: ExemptionService
    quotas: QuotaService
    notifier: WebhookNotifier | None
    grants: GrantService
    verifier: TokenVerifier
    dev_issuer: dev_issuer.Trust

    @property
    def dev_issuer_trusted(self) -> bool:
        return self.dev_issuer is dev_issuer.Trust.TRUSTED

    def check_ready(self) -> dict[str, str]:
        """Each component's state; Unavailable names every one that is down (its ``failed``)."""
        checks: dict[str, Callable[[], str | None]] = {
            "database": self._check_database,
            # Through the probe, so that readiness also tells the grant path what it saw.
            "storage": self.storage_probe.probe,
            "keys": self._check_keys,
            "audit": self.audit.check_append,
            "checkpoints": self._check_checkpoints,
        }
        states: dict[str, str] = {}
        failed: dict[str, str] = {}
        for component, check in checks.items():
            if component in _NEED_DATABASE and "database" in failed:
                failed[component] = "not checked: the database is unreachable"
                continue
            try:
                states[component] = check() or "ok"
            except WeightgateError as exc:
                failed[component] = str(exc.detail.get("public", exc.message))
        for component in failed:
            metrics.READINESS_FAILURES.labels(component).inc()
        if failed:
            summary = "; ".join(f"{name}: {why}" for name, why in failed.items())
            raise Unavailable(f"not ready: {summary}", failed=failed)
        return states

    def _check_database(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable("database is unreachable") from exc

    def _check_keys(self) -> None:
        with metrics.keystore_call("check"):
            self.keystore.check()

    def _check_checkpoints(self) -> str:
        """Publication works: this process's last round (if it publishes) and the log's lag."""
        failure = self.publisher.status.failure
        if failure is not None:
            raise Unavailable(f"checkpoint publication is failing: {failure}")
        lag = self.publisher.lag().total_seconds()
        # Whichever replica publishes, entries should not wait much past the interval.
        if lag > max(STALE_CHECKPOINT_SECONDS, 10 * self.publisher.interval):
            raise Unavailable(
                f"checkpoint publication is stalled: the oldest unsigned entry "
                f"has waited {lag:.0f} s"
            )
        # Which replica publishes is worth seeing: it is the one whose anchor writes matter.
        return "publishing" if self.publisher.status.leader else "ok"

    def start(self) -> None:
        """Start a serving process's background work: checkpoints, refusal summaries, probes."""
        self.publisher.start()
        self.rejections.start()
        # Organisations whose stored result predates the list this process loaded.
        self.screening.start(RequestContext(request_id="screening", client_address=None))
        self.storage_probe.start()

    def close(self) -> None:
        """Stop background work, drain the audit writer, and release connections."""
        self.storage_probe.close()
        self.screening.close()
        self.rejections.close()
        self.publisher.close(final=True)
        if self.notifier is not None:
            self.notifier.close()
        self.audit.close()
        self.engine.dispose()


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# Readiness components that read the database: not checked while it is unreachable.
_NEED_DATABASE = frozenset({"audit", "checkpoints"})
# Readiness fails once the oldest unsigned entry has waited this long (or ten intervals).
STALE_CHECKPOINT_SECONDS = 30


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(p.strip()) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise InvalidInput(f"WEIGHTGATE_TRUSTED_PROXIES: {exc}") from None


def load_witnesses(path: Path) -> dict[str, Ed25519PublicKey]:
    """The witnesses whose cosignatures the gateway accepts and serves."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {
            str(e["name"]): Ed25519PublicKey.from_public_bytes(base64.b64decode(e["public_key"]))
            for e in entries
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"cannot read witnesses file {path}: {exc}") from None


def build_storage(settings: Settings, url_key: bytes, *, clock: Clock) -> BlobStore:
    location = settings.resolved_storage()
    if location.startswith("file://"):
        return LocalBlobStore(Path(location.removeprefix("file://")), url_key, settings.url, clock)
    if location.startswith("s3://"):
        bucket, prefix = s3.parse_location(location)
        # Credentials and region come from the usual AWS chain (environment,
        # shared config, instance role); the region defaults to us-east-1.
        # Redirects and checks get the short timeouts of REQUEST_CONFIG, so a
        # hung store costs a request seconds; uploads keep the longer ones.
        client = s3.make_client(endpoint_url=settings.s3_endpoint_url, config=s3.REQUEST_CONFIG)
        uploads = s3.make_client(endpoint_url=settings.s3_endpoint_url)
        return s3.S3BlobStore(bucket, prefix, client=client, clock=clock, upload_client=uploads)
    raise InvalidInput(
        f"WEIGHTGATE_STORAGE {location!r}: expected file://DIR or s3://BUCKET[/PREFIX]"
    )


# Alembic's own table: present once a schema has been created, whatever its revision.
_SCHEMA_MARKER = "alembic_version"


def require_state(settings: Settings) -> None:
    """Refuse a home (or database) without the gateway's state, naming where it looked.

    Only ``keys init`` and ``serve`` create state (``create_state``). Any other
    command given a mistyped WEIGHTGATE_HOME would otherwise create an empty
    gateway that no running one reads, and report on it as if it were the real one.
    """
    url = make_url(settings.resolved_database_url())
    variable, where = state_location(settings)
    # SQLite creates a missing database file on connect: look before connecting.
    sqlite_missing = url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file()
    if sqlite_missing or not _has_schema(settings.resolved_database_url()):
        raise NotFound(
            f"no gateway state in {where} ({variable}); create it with `weightgate keys init` "
            f"(or a first `weightgate serve`), or point {variable} at the gateway's state"
        )


def state_location(settings: Settings) -> tuple[str, str]:
    """The setting that says where the state is, and that place as a user should read it."""
    if settings.database_url is None:
        return "WEIGHTGATE_HOME", str(settings.home.resolve())
    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    return "WEIGHTGATE_DATABASE_URL", f"the database {shown}"


def create_state(settings: Settings) -> bool:
    """Create the state if it is missing (``keys init``, a first ``serve``); True if this did."""
    if settings.database_url is None:
        # SQLite lives under the home; with a database URL (a deploy job on a
        # read-only filesystem, say) nothing local is needed.
        settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    try:
        existed = inspect(engine).has_table(_SCHEMA_MARKER)
        migrate(engine, checkpoint_dir=settings.home / "checkpoints")
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unreachable") from exc
    finally:
        engine.dispose()
    return not existed


def _has_schema(url: str) -> bool:
    engine = make_engine(url)
    try:
        return inspect(engine).has_table(_SCHEMA_MARKER)
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unreachable") from exc
    finally:
        engine.dispose()


def build_keystore(settings: Settings) -> Keystore:
    """The keystore named by WEIGHTGATE_KEYSTORE: ``local`` (the default) or ``kms:KEY``."""
    if settings.keystore == "local":
        return LocalKeystore(settings.keys_dir)
    if settings.keystore.startswith(kms_keystore.SCHEME):
        key = kms_keystore.parse_key_reference(settings.keystore)
        # Credentials and region from the usual AWS chain, as for S3.
        client = kms_keystore.make_client(endpoint_url=settings.kms_endpoint_url)
        # Data keys wrapped before the move to KMS still unwrap from kek/ until
        # `keys rotate` has re-wrapped them.
        return MigratingKeystore(
            kms_keystore.KmsKeystore(key, client=client),
            LocalKeystore(settings.keys_dir),
            previous_scheme="local:",
        )
    raise InvalidInput(
        f"WEIGHTGATE_KEYSTORE {settings.keystore!r}: expected local or kms:<key ARN or alias>"
    )


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Every service, over state that is created (or migrated) if need be: see ``require_state``."""
    clock = clock or SystemClock()
    keys_dir = settings.keys_dir
    keys = GatewayKeys.load(keys_dir)
    # An issuers file configures real issuers even if it lists none: fail closed.
    dev_trust = dev_issuer.trust(
        keys_dir, setting=settings.dev_issuer, issuers_configured=settings.issuers_file is not None
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine, checkpoint_dir=settings.home / "checkpoints")
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unreachable") from exc
    sessions = session_factory(engine)
    pack = load_pack(settings.policy, search_dir=settings.policy_dir)
    keystore = CachedKeystore(
        build_keystore(settings),
        clock=clock,
        lifetime=timedelta(seconds=settings.data_key_cache_seconds),
    )
    blobs = build_storage(settings, keys.url_hmac, clock=clock)
    # Real time, not ``clock``: how long ago the store last failed is a fact
    # about the network, and a test's or the demo's fixed clock never moves.
    storage_health = StorageHealth(SystemClock())
    monitored = MonitoredBlobStore(blobs, storage_health)
    audit = AuditLog(
        sessions,
        origin=settings.audit_origin,
        public_key=keys.audit_signer.public_key(),
        checkpoint_interval=settings.checkpoint_interval,
    )
    anchors = open_anchor_store(
        settings.resolved_checkpoint_anchor(),
        clock=clock,
        s3_endpoint_url=settings.s3_endpoint_url,
        retention_days=settings.checkpoint_retention_days,
    )
    publisher = CheckpointPublisher(
        log=audit,
        anchors=anchors,
        signer=keys.audit_signer,
        leadership=leadership_for(engine, settings.home),
        clock=clock,
        interval=settings.checkpoint_interval,
    )
    policy = PolicySource(
        pack,
        spec=settings.policy,
        search_dir=settings.policy_dir,
        sessions=sessions,
        audit=audit,
        clock=clock,
    )
    geoip: GeoIp = MaxMindGeoIp(settings.geoip_db) if settings.geoip_db else NoGeoIp()
    # The list's index is built here, once per load; a grant reads stored results.
    screening = ScreeningService(
        sessions,
        audit=audit,
        clock=clock,
        path=settings.screening_list,
        threshold=settings.screening_threshold,
    )
    catalog = Catalog(
        sessions,
        audit=audit,
        keystore=keystore,
        blobs=blobs,
        clock=clock,
        screening=screening,
    )
    exemptions = ExemptionService(
        sessions,
        audit=audit,
        catalog=catalog,
        policy=policy,
        clock=clock,
        approvals_required=settings.exemption_approvals,
        pending_for=timedelta(days=settings.exemption_pending_days),
    )
    notifier = None
    if settings.webhook_url:
        if settings.webhook_secret is None:
            raise InvalidInput("WEIGHTGATE_WEBHOOK_URL needs WEIGHTGATE_WEBHOOK_SECRET")
        notifier = WebhookNotifier(
            settings.webhook_url, settings.webhook_secret.get_secret_value().encode(), clock
        )
        audit.subscribe(notifier)
    quotas = QuotaService(sessions, audit=audit, clock=clock, hash_key=keys.audit_hmac)
    ttl = min(settings.grant_ttl_seconds, settings.grant_max_ttl_seconds)
    grants = GrantService(
        sessions=sessions,
        catalog=catalog,
        audit=audit,
        keystore=keystore,
        blobs=monitored,
        storage=storage_health,
        policy=policy,
        exemptions=exemptions,
        quotas=quotas,
        geoip=geoip,
        screening=screening,
        clock=clock,
        public_url=settings.url,
        url_key=keys.url_hmac,
        audit_hash_key=keys.audit_hmac,
        grant_ttl=timedelta(seconds=ttl),
    )
    issuers = load_issuers_file(settings.issuers_file, clock) if settings.issuers_file else []
    if dev_trust is dev_issuer.Trust.TRUSTED:
        issuers.append(dev_issuer.issuer(keys_dir))
    verifier = TokenVerifier(
        issuers,
        clock,
        timedelta(seconds=settings.token_leeway_seconds),
        replay=DatabaseReplayGuard(sessions, clock),
    )
    return Services(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        policy=policy,
        geoip=geoip,
        screening=screening,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        witnesses=load_witnesses(settings.witnesses_file) if settings.witnesses_file else {},
        keys=keys,
        keystore=keystore,
        blobs=blobs,
        storage_health=storage_health,
        storage_probe=StorageProbe(monitored),
        audit=audit,
        anchors=anchors,
        publisher=publisher,
        rejections=RejectionLedger(audit, clock),
        catalog=catalog,
        exemptions=exemptions,
        quotas=quotas,
        notifier=notifier,
        grants=grants,
        verifier=verifier,
        dev_issuer=dev_trust,
    )
