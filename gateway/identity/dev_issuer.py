"""The development token issuer that ``weightgate keys init`` creates.

It exists so a laptop, the demo and the tests can run the whole flow; in
production, tokens come from the organisation's identity provider.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.clock import Clock
from gateway.crypto.keyfiles import ed25519_to_pem, load_ed25519, write_secret
from gateway.identity.issuers import DEFAULT_AUDIENCE, DEV_ISSUER, TrustedIssuer
from gateway.identity.jwks import FileJwks
from gateway.identity.principal import Role

PRIVATE_KEY_FILE = "dev-issuer.pem"
JWKS_FILE = "dev-issuer.jwks.json"
_ALGORITHMS = ("EdDSA",)


def create(keys_dir: Path) -> None:
    key = Ed25519PrivateKey.generate()
    write_secret(keys_dir / PRIVATE_KEY_FILE, ed25519_to_pem(key))
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": _kid(key), "alg": "EdDSA", "use": "sig"})
    write_secret(keys_dir / JWKS_FILE, json.dumps({"keys": [jwk]}, indent=2).encode())


def _kid(key: Ed25519PrivateKey) -> str:
    return "dev-" + hashlib.sha256(key.public_key().public_bytes_raw()).hexdigest()[:16]


def trusted(keys_dir: Path) -> TrustedIssuer | None:
    jwks = keys_dir / JWKS_FILE
    if not jwks.exists():
        return None
    return TrustedIssuer(
        issuer=DEV_ISSUER,
        audience=DEFAULT_AUDIENCE,
        jwks=FileJwks(jwks, _ALGORITHMS),
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
