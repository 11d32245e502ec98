"""Issuers configured by the operator: a JWKS file, an algorithm allow-list, custom claim names."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.clock import FixedClock
from gateway.errors import InvalidInput, Unauthenticated
from gateway.identity.issuers import load_issuers_file
from gateway.identity.principal import Role
from gateway.identity.tokens import TokenVerifier

ISSUER = "https://idp.example.test"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CLOCK = FixedClock(NOW)


def _jwks(tmp_path: Path, keys: dict[str, Any]) -> Path:
    entries = []
    for kid, (key, alg) in keys.items():
        jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(key.public_key()))
        entries.append({**jwk, "kid": kid, "alg": alg, "use": "sig"})
    path = tmp_path / "idp.jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return path


def _issuers(tmp_path: Path, **entry: Any) -> Path:
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps([{"issuer": ISSUER, "audience": "weights", **entry}]))
    return path


@pytest.fixture
def keys() -> dict[str, Any]:
    return {
        "rsa-1": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        "ec-1": (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    }


def _token(key: Any, alg: str, kid: str, **claims: Any) -> str:
    now = int(NOW.timestamp())
    body = {
        "iss": ISSUER,
        "aud": "weights",
        "iat": now,
        "exp": now + 300,
        "sub": "svc-7",
        "https://corp/org": "rhein",
        "https://corp/country": "FR",
        "https://corp/groups": ["ml", "security"],
        **claims,
    }
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def test_configured_issuer_with_custom_claim_names(tmp_path: Path, keys: dict[str, Any]) -> None:
    jwks = _jwks(tmp_path, keys)
    issuers = load_issuers_file(
        _issuers(
            tmp_path,
            jwks_file=jwks.name,
            algorithms=["RS256", "ES256"],
            claims={
                "org": "https://corp/org",
                "country": "https://corp/country",
                "roles": "https://corp/groups",
            },
        ),
        CLOCK,
    )
    verifier = TokenVerifier(issuers, FixedClock(NOW))
    for kid, (key, alg) in keys.items():
        principal = verifier.verify(_token(key, alg, kid))
        assert (principal.subject, principal.org, principal.country) == ("svc-7", "rhein", "FR")
        assert principal.roles == {Role.ML, Role.SECURITY}


def test_algorithm_outside_the_issuers_allow_list_is_refused(
    tmp_path: Path, keys: dict[str, Any]
) -> None:
    jwks = _jwks(tmp_path, keys)
    issuers = load_issuers_file(
        _issuers(tmp_path, jwks_file=str(jwks), algorithms=["ES256"]), CLOCK
    )
    verifier = TokenVerifier(issuers, FixedClock(NOW))
    key, alg = keys["rsa-1"]
    with pytest.raises(Unauthenticated):
        verifier.verify(_token(key, alg, "rsa-1", org="rhein", country="FR"))


@pytest.mark.parametrize("algorithms", [["HS256"], ["none"], ["RS256", "HS512"]])
def test_symmetric_or_none_algorithms_cannot_be_configured(
    tmp_path: Path, keys: dict[str, Any], algorithms: list[str]
) -> None:
    jwks = _jwks(tmp_path, keys)
    with pytest.raises(InvalidInput, match="not allowed"):
        load_issuers_file(_issuers(tmp_path, jwks_file=str(jwks), algorithms=algorithms), CLOCK)


def test_unreadable_issuer_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="issuers file"):
        load_issuers_file(tmp_path / "absent.json", CLOCK)
    with pytest.raises(InvalidInput, match="JWKS"):
        load_issuers_file(_issuers(tmp_path, jwks_file="absent.jwks.json"), CLOCK)
