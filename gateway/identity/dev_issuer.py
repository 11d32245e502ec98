"""The development token issuer that ``weightgate keys init --dev-issuer`` creates.

It exists so a laptop, the demo and the tests can run the whole flow; in
production, tokens come from the organisation's identity provider. Whoever
can read its private key mints tokens with any role, so it is created only
when asked for, and trusted beside configured issuers only when explicitly
allowed (``WEIGHTGATE_DEV_ISSUER=allow``): a key file forgotten on a
production host opens nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import Clock
from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, write_secret
from gateway.errors import InvalidInput, NotFound
from gateway.identity.issuers import DEFAULT_AUDIENCE, DEV_ISSUER, TrustedIssuer
from gateway.identity.jwks import FileJwks
from gateway.identity.principal import Role

PRIVATE_KEY_FILE = "dev-issuer.pem"
JWKS_FILE = "dev-issuer.jwks.json"
_ALGORITHMS = ("EdDSA",)
# WEIGHTGATE_DEV_ISSUER: "auto" trusts it only when no other issuer is configured.
SETTINGS = ("auto", "allow")


class Trust(StrEnum):
    ABSENT = "absent"  # never created: nothing to trust
    TRUSTED = "trusted"
    REFUSED = "refused"  # its key exists, but real issuers are configured and it is not allowed


def create(keys_dir: Path) -> None:
    key = Ed25519PrivateKey.generate()
    write_secret(keys_dir / PRIVATE_KEY_FILE, ed25519_to_pem(key))
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": _kid(key), "alg": "EdDSA", "use": "sig"})
    write_secret(keys_dir / JWKS_FILE, json.dumps({"keys": [jwk]}, indent=2).encode())


def _kid(key: Ed25519PrivateKey) -> str:
    return "dev-" + hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest()[:16]


def trust(keys_dir: Path, *, setting: str, issuers_configured: bool) -> Trust:
    """Whether the gateway trusts the dev issuer: its key exists, and no real issuer, or allowed."""
    if setting not in SETTINGS:
        raise InvalidInput(f"WEIGHTGATE_DEV_ISSUER must be 'allow' or unset, not {setting!r}")
    if not (keys_dir / JWKS_FILE).exists():
        return Trust.ABSENT
    if issuers_configured and setting != "allow":
        return Trust.REFUSED
    return Trust.TRUSTED


def issuer(keys_dir: Path) -> TrustedIssuer:
    return TrustedIssuer(
        issuer=DEV_ISSUER,
        audience=DEFAULT_AUDIENCE,
        jwks=FileJwks(keys_dir / JWKS_FILE, _ALGORITHMS),
        algorithms=_ALGORITHMS,
    )


def mint(
    keys_dir: Path,
    clock: Clock,
    *,
    subject: str,
    org: str,
    country: str,
    roles: list[Role],
    ttl: timedelta,
    bind_to: str | None = None,
) -> str:
    """A token for the dev issuer; ``bind_to`` (a JWK thumbprint) makes it DPoP-bound."""
    if not (keys_dir / PRIVATE_KEY_FILE).exists():
        raise NotFound(
            f"no development token issuer in {keys_dir.resolve()} (WEIGHTGATE_KEYS_DIR); "
            "create one with `weightgate keys init --dev-issuer`"
        )
    key = load_ed25519(keys_dir / PRIVATE_KEY_FILE)
    now = int(clock.now().timestamp())
    claims: dict[str, object] = {
        "iss": DEV_ISSUER,
        "aud": DEFAULT_AUDIENCE,
        "sub": subject,
        "org": org,
        "country": country,
        "roles": [role.value for role in roles],
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl.total_seconds()),
        "jti": uuid.uuid4().hex,
    }
    if bind_to is not None:
        claims["cnf"] = {"jkt": bind_to}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": _kid(key)})
