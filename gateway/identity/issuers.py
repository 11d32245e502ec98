"""Trusted issuers: whose tokens we accept, with which keys, algorithms and claim names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.errors import InvalidInput
from gateway.identity.jwks import FileJwks, JwksSource, RemoteJwks

# Asymmetric algorithms only: an HMAC algorithm for an issuer with public keys
# would let anyone holding the public key mint tokens (key confusion).
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA"})
DEV_ISSUER = "weightgate-dev"
DEFAULT_AUDIENCE = "weightgate"
DEFAULT_MAX_LIFETIME = timedelta(hours=24)
_KEYS = frozenset(
    {
        "issuer",
        "audience",
        "jwks_file",
        "jwks_url",
        "algorithms",
        "claims",
        "require_dpop",
        "one_time_tokens",
        "jwks_ttl_seconds",
        "jwks_refetch_interval_seconds",
        "jwks_max_stale_seconds",
        "max_token_lifetime_seconds",
    }
)


@dataclass(frozen=True)
class ClaimNames:
    subject: str = "sub"
    org: str = "org"
    country: str = "country"
    roles: str = "roles"


@dataclass(frozen=True)
class TrustedIssuer:
    issuer: str
    audience: str
    jwks: JwksSource
    algorithms: tuple[str, ...]
    claims: ClaimNames = field(default_factory=ClaimNames)
    # Sender-constrained tokens only (RFC 9449): a bearer token from this issuer is refused.
    require_dpop: bool = False
    # For issuers that mint a token per request: each jti is accepted once.
    one_time_tokens: bool = False
    # The longest exp - iat accepted: longer-lived tokens are standing credentials.
    max_lifetime: timedelta = DEFAULT_MAX_LIFETIME


def load_issuers_file(path: Path, clock: Clock) -> list[TrustedIssuer]:
    """Issuers configured by the operator: a JSON list of issuer objects (see the README)."""
    try:
        entries: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read issuers file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise InvalidInput(f"issuers file {path}: expected a JSON list of issuers")
    return [_issuer(entry, path.parent, clock) for entry in entries]


def _issuer(entry: Any, base: Path, clock: Clock) -> TrustedIssuer:
    if not isinstance(entry, dict) or not isinstance(entry.get("issuer"), str):
        raise InvalidInput("each configured issuer needs an 'issuer' string")
    name = entry["issuer"]
    unknown = set(entry) - _KEYS
    if unknown:
        raise InvalidInput(f"issuer {name}: unknown settings {sorted(unknown)}")
    algorithms = tuple(entry.get("algorithms", ["RS256", "ES256", "EdDSA"]))
    unsupported = set(algorithms) - ASYMMETRIC_ALGORITHMS
    if unsupported or not algorithms:
        raise InvalidInput(f"issuer {name}: algorithms {sorted(unsupported)} not allowed")
    jwks: JwksSource
    if ("jwks_file" in entry) == ("jwks_url" in entry):
        raise InvalidInput(f"issuer {name}: give exactly one of jwks_file and jwks_url")
    if "jwks_file" in entry:
        jwks_path = Path(entry["jwks_file"])
        jwks = FileJwks(jwks_path if jwks_path.is_absolute() else base / jwks_path, algorithms)
    else:
        jwks = RemoteJwks(
            str(entry["jwks_url"]),
            algorithms,
            clock,
            ttl=timedelta(seconds=int(entry.get("jwks_ttl_seconds", 300))),
            refetch_interval=timedelta(seconds=int(entry.get("jwks_refetch_interval_seconds", 30))),
            max_stale=timedelta(seconds=int(entry.get("jwks_max_stale_seconds", 86_400))),
        )
    try:
        claims = ClaimNames(**entry.get("claims", {}))
    except TypeError as exc:
        raise InvalidInput(f"issuer {name}: claims: {exc}") from None
    lifetime = entry.get("max_token_lifetime_seconds", DEFAULT_MAX_LIFETIME.total_seconds())
    if not isinstance(lifetime, int | float) or not 0 < lifetime <= 30 * 86_400:
        raise InvalidInput(f"issuer {name}: max_token_lifetime_seconds must be 1 to 2592000")
    return TrustedIssuer(
        issuer=name,
        audience=str(entry.get("audience", DEFAULT_AUDIENCE)),
        jwks=jwks,
        algorithms=algorithms,
        claims=claims,
        require_dpop=bool(entry.get("require_dpop", False)),
        one_time_tokens=bool(entry.get("one_time_tokens", False)),
        max_lifetime=timedelta(seconds=lifetime),
    )
