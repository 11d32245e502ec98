"""Trusted issuers: whose tokens we accept, with which keys, algorithms and claim names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.clock import Clock
from gateway.errors import InvalidInput
from gateway.identity.jwks import FileJwks, JwksSource, RemoteJwks, check_provider_url

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
        "console",
    }
)
_CONSOLE_KEYS = frozenset({"client_id", "authorization_endpoint", "token_endpoint", "scopes"})
MAX_CLIENT_ID_CHARS = 200
MAX_SCOPES = 16


@dataclass(frozen=True)
class ClaimNames:
    subject: str = "sub"
    org: str = "org"
    country: str = "country"
    roles: str = "roles"


@dataclass(frozen=True)
class ConsoleClient:
    """The console's OIDC client at an issuer: authorization-code flow with PKCE, no secret.

    A public client: the console keeps no client secret, so PKCE (S256) is what
    stops a stolen authorization code from being redeemed elsewhere.
    """

    client_id: str
    authorization_endpoint: str
    token_endpoint: str
    scopes: tuple[str, ...] = ("openid",)


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
    # Set when people sign in to the console through this issuer.
    console: ConsoleClient | None = None


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
        console=_console_client(name, entry["console"]) if "console" in entry else None,
    )


def _console_client(name: str, entry: Any) -> ConsoleClient:
    if not isinstance(entry, dict):
        raise InvalidInput(f"issuer {name}: console must be an object")
    unknown = set(entry) - _CONSOLE_KEYS
    if unknown:
        raise InvalidInput(f"issuer {name}: unknown console settings {sorted(unknown)}")
    client_id = entry.get("client_id")
    if (
        not isinstance(client_id, str)
        or not 0 < len(client_id) <= MAX_CLIENT_ID_CHARS
        or not client_id.isprintable()
    ):
        raise InvalidInput(
            f"issuer {name}: console client_id must be 1-{MAX_CLIENT_ID_CHARS} printable characters"
        )
    endpoints = {}
    for key in ("authorization_endpoint", "token_endpoint"):
        url = entry.get(key)
        if not isinstance(url, str):
            raise InvalidInput(f"issuer {name}: console {key} must be a URL")
        # A fragment is never sent to a server (RFC 6749, 3.1): one here is a mistake.
        if "#" in url or not url.isprintable() or any(c.isspace() for c in url):
            raise InvalidInput(f"issuer {name}: console {key} {url!r} is not a URL")
        endpoints[key] = check_provider_url(url, f"issuer {name}: console {key}")
    scopes = entry.get("scopes", ["openid"])
    if (
        not isinstance(scopes, list)
        or not 0 < len(scopes) <= MAX_SCOPES
        or not all(_is_scope(scope) for scope in scopes)
    ):
        raise InvalidInput(
            f"issuer {name}: console scopes must be a list of 1-{MAX_SCOPES} scope names"
        )
    if "openid" not in scopes:
        scopes = ["openid", *scopes]
    return ConsoleClient(
        client_id=client_id,
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        scopes=tuple(scopes),
    )


def _is_scope(scope: Any) -> bool:
    # RFC 6749, 3.3: printable ASCII without space, '"' or '\\'.
    return (
        isinstance(scope, str)
        and 0 < len(scope) <= 100
        and all("!" <= c <= "~" and c not in '"\\' for c in scope)
    )
