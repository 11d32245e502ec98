"""Trusted issuers: whose tokens we accept, with which keys, algorithms and claim names."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from gateway.errors import InvalidInput

# Asymmetric algorithms only: an HMAC algorithm for an issuer with public keys
# would let anyone holding the public key mint tokens (key confusion).
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "PS256", "ES256", "EdDSA"})
DEV_ISSUER = "weightgate-dev"
DEFAULT_AUDIENCE = "weightgate"


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
    keys: dict[str, jwt.PyJWK]
    algorithms: tuple[str, ...]
    claims: ClaimNames = field(default_factory=ClaimNames)


def load_jwks(path: Path, algorithms: tuple[str, ...]) -> dict[str, jwt.PyJWK]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        key_set = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWKSetError) as exc:
        raise InvalidInput(f"cannot load JWKS {path}: {exc}") from None
    keys = {}
    for key in key_set.keys:
        if key.key_id is None:
            raise InvalidInput(f"JWKS {path}: every key needs a kid")
        if key.algorithm_name not in algorithms and key.algorithm_name != "":
            continue
        keys[key.key_id] = key
    return keys


def load_issuers_file(path: Path) -> list[TrustedIssuer]:
    """Issuers configured by the operator: a JSON list of issuer objects."""
    try:
        entries: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read issuers file {path}: {exc}") from None
    issuers = []
    for entry in entries:
        algorithms = tuple(entry.get("algorithms", ["RS256", "ES256", "EdDSA"]))
        unsupported = set(algorithms) - ASYMMETRIC_ALGORITHMS
        if unsupported:
            raise InvalidInput(
                f"issuer {entry.get('issuer')}: algorithms {unsupported} not allowed"
            )
        jwks_path = Path(entry["jwks_file"])
        if not jwks_path.is_absolute():
            jwks_path = path.parent / jwks_path
        issuers.append(
            TrustedIssuer(
                issuer=str(entry["issuer"]),
                audience=str(entry.get("audience", DEFAULT_AUDIENCE)),
                keys=load_jwks(jwks_path, algorithms),
                algorithms=algorithms,
                claims=ClaimNames(**entry.get("claims", {})),
            )
        )
    return issuers
