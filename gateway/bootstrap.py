"""The composition root: settings in, services out. Nothing is built at import time."""

from __future__ import annotations

import base64
import ipaddress
import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.audit.log import AuditLog
from gateway.catalog import Catalog
from gateway.clock import Clock, SystemClock
from gateway.config import Settings
from gateway.context.geoip import GeoIp, MaxMindGeoIp, NoGeoIp
from gateway.context.policy_source import PolicySource
from gateway.crypto.keyring import GatewayKeys
from gateway.crypto.keystore import LocalKeystore
from gateway.errors import InvalidInput, Unavailable
from gateway.exemptions import ExemptionService
from gateway.identity import dev_issuer
from gateway.identity.issuers import load_issuers_file
from gateway.identity.replay import DatabaseReplayGuard
from gateway.identity.tokens import TokenVerifier
from gateway.notify import WebhookNotifier
from gateway.policy.pack import load_pack
from gateway.policy.screening import ScreeningList, load_screening_list
from gateway.quotas import QuotaService
from gateway.service import GrantService
from gateway.state.database import make_engine, migrate, session_factory
from gateway.storage import s3
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
    screening: ScreeningList | None
    trusted_proxies: tuple[IPNetwork, ...]
    witnesses: dict[str, Ed25519PublicKey]
    keys: GatewayKeys
    keystore: LocalKeystore
    blobs: BlobStore
    audit: AuditLog
    catalog: Catalog
    exemptions: ExemptionService
    quotas: QuotaService
    notifier: WebhookNotifier | None
    grants: GrantService
    verifier: TokenVerifier

    @property
    def trusts_dev_issuer(self) -> bool:
        return (self.settings.keys_dir / dev_issuer.JWKS_FILE).exists()

    def check_ready(self) -> dict[str, str]:
        """Each dependency's state; raises Unavailable if any is down."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            raise Unavailable("database is unreachable") from exc
        self.blobs.check()
        self.keystore.check()
        return {"database": "ok", "storage": "ok", "keys": "ok"}

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.close()
        self.audit.close()
        self.engine.dispose()


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        client = s3.make_client(endpoint_url=settings.s3_endpoint_url)
        return s3.S3BlobStore(bucket, prefix, client=client, clock=clock)
    raise InvalidInput(
        f"WEIGHTGATE_STORAGE {location!r}: expected file://DIR or s3://BUCKET[/PREFIX]"
    )


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    keys_dir = settings.keys_dir
    if not keys_dir.is_dir():
        raise Unavailable(f"no keys in {keys_dir}; run `weightgate keys init`")
    keys = GatewayKeys.load(keys_dir)
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        raise Unavailable("the database is unreachable") from exc
    sessions = session_factory(engine)
    pack = load_pack(settings.policy, search_dir=settings.policy_dir)
    keystore = LocalKeystore(keys_dir)
    blobs = build_storage(settings, keys.url_hmac, clock=clock)
    audit = AuditLog(
        sessions,
        origin=settings.audit_origin,
        signer=keys.audit_signer,
        checkpoint_dir=settings.home / "checkpoints",
    )
    policy = PolicySource(
        pack, spec=settings.policy, search_dir=settings.policy_dir, audit=audit, clock=clock
    )
    geoip: GeoIp = MaxMindGeoIp(settings.geoip_db) if settings.geoip_db else NoGeoIp()
    screening = (
        load_screening_list(settings.screening_list, threshold=settings.screening_threshold)
        if settings.screening_list
        else None
    )
    catalog = Catalog(
        sessions,
        audit=audit,
        keystore=keystore,
        blobs=blobs,
        clock=clock,
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
        blobs=blobs,
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
    dev = dev_issuer.trusted(keys_dir)
    if dev is not None:
        issuers.append(dev)
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
        audit=audit,
        catalog=catalog,
        exemptions=exemptions,
        quotas=quotas,
        notifier=notifier,
        grants=grants,
        verifier=verifier,
    )
