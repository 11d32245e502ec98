"""Settings, read once from the environment (``WEIGHTGATE_*``) by the composition root."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.policy.pack import DEFAULT_PACK

# Where ``serve`` listens by default, and so where a client looks without WEIGHTGATE_URL.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


class Settings(BaseSettings):
    """The gateway's configuration; see the README for each variable."""

    model_config = SettingsConfigDict(env_prefix="WEIGHTGATE_", extra="ignore")

    home: Path = Path(".weightgate")
    keys_dir: Path = Path("keys")
    database_url: str | None = None
    storage: str | None = None
    s3_endpoint_url: str | None = None
    keystore: str = "local"  # local (KEKs in keys_dir/kek) or kms:<key ARN | key id | alias/NAME>
    kms_endpoint_url: str | None = None
    # How long an unwrapped data key is remembered (0: never); see keys/README.md.
    data_key_cache_seconds: int = Field(default=60, ge=0, le=3600)
    # Unset, ``serve`` issues URLs for the address it binds (see ``public_url``).
    url: str = DEFAULT_URL
    policy: str = DEFAULT_PACK
    policy_dir: Path | None = None
    geoip_db: Path | None = None
    screening_list: Path | None = None
    screening_threshold: int = Field(default=90, ge=50, le=100)
    trusted_proxies: str = ""  # comma-separated CIDRs whose X-Forwarded-For is believed
    issuers_file: Path | None = None
    # "allow" trusts the development issuer beside issuers_file; checked in ``dev_issuer.trust``
    # (a plain string, so that a misspelling is a one-line error, not a validation dump).
    dev_issuer: str = "auto"
    audit_origin: str = "weightgate.local/audit"
    exemption_approvals: int = Field(default=1, ge=1)  # approvals needed besides the proposer
    exemption_pending_days: int = Field(default=7, ge=1)
    webhook_url: str | None = None  # exemption and denial events are POSTed here, signed
    webhook_secret: SecretStr | None = None
    witnesses_file: Path | None = None  # JSON list of {"name", "public_key"} (Ed25519, base64)
    grant_ttl_seconds: int = Field(default=900, gt=0)
    grant_max_ttl_seconds: int = Field(default=3600, gt=0)
    token_leeway_seconds: int = Field(default=30, ge=0, le=60)
    checkpoint_interval: float = Field(default=1.0, gt=0, le=3600)  # seconds between checkpoints
    checkpoint_anchor: str | None = None  # file://DIR or s3://BUCKET[/PREFIX] (Object Lock)
    checkpoint_retention_days: int = Field(default=2557, ge=1)  # Object Lock retention (7 years)
    # json, text, or auto: text on a terminal, JSON lines elsewhere (see docs/OPERATIONS.md);
    # a plain string, checked in ``logging_setup``, so that a misspelling is a one-line error.
    log_format: str = "auto"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'weightgate.db').resolve()}"

    def resolved_storage(self) -> str:
        return self.storage or f"file://{(self.home / 'blobs').resolve()}"

    def resolved_checkpoint_anchor(self) -> str:
        return self.checkpoint_anchor or f"file://{(self.home / 'checkpoints').resolve()}"


class ClientSettings(BaseSettings):
    """What a client (``weightgate fetch``) needs: where the gateway is and who we are."""

    model_config = SettingsConfigDict(env_prefix="WEIGHTGATE_", extra="ignore")

    url: str = DEFAULT_URL
    token: str | None = None
    dpop_key: Path | None = None  # PEM (Ed25519 or P-256) the token is bound to, if DPoP
