"""Token verification: each test is an attack on the gateway's front door."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.crypto.keyfiles import load_ed25519
from gateway.errors import InvalidInput, Unauthenticated
from gateway.identity import dev_issuer
from gateway.identity.issuers import DEFAULT_AUDIENCE, DEV_ISSUER
from gateway.identity.principal import Role
from gateway.identity.tokens import TokenVerifier
from tests.conftest import mint


def _claims(services: Services, **overrides: Any) -> dict[str, Any]:
    now = int(services.clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": DEV_ISSUER,
        "aud": DEFAULT_AUDIENCE,
        "sub": "anna",
        "org": "rhein",
        "country": "DE",
        "roles": ["ml"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "t1",
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _dev_key(services: Services) -> Ed25519PrivateKey:
    return load_ed25519(services.settings.keys_dir / dev_issuer.PRIVATE_KEY_FILE)


def _kid(services: Services) -> str:
    jwks = json.loads((services.settings.keys_dir / dev_issuer.JWKS_FILE).read_text())
    kid: str = jwks["keys"][0]["kid"]
    return kid


def _signed(services: Services, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(
        claims, _dev_key(services), algorithm="EdDSA", headers={"kid": _kid(services), **headers}
    )


def test_dev_issuer_token_maps_to_principal(services: Services) -> None:
    token = mint(services, roles=(Role.ML, Role.SECURITY))
    principal = services.verifier.verify(token)
    assert (principal.subject, principal.org, principal.country) == ("anna", "rhein", "DE")
    assert principal.roles == {Role.ML, Role.SECURITY}
    assert principal.issuer == DEV_ISSUER


def _unsigned_none(claims: dict[str, Any], kid: str) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{part(claims)}."


def test_alg_none_token_is_refused(services: Services) -> None:
    with pytest.raises(Unauthenticated, match="algorithm"):
        services.verifier.verify(_unsigned_none(_claims(services), _kid(services)))


def test_hmac_token_signed_with_the_public_key_is_refused(services: Services) -> None:
    # Key confusion: the attacker knows the public key and uses it as an HMAC secret.
    public = _dev_key(services).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    forged = jwt.encode(
        _claims(services), public, algorithm="HS256", headers={"kid": _kid(services)}
    )
    with pytest.raises(Unauthenticated, match="algorithm"):
        services.verifier.verify(forged)


def test_token_signed_by_another_key_under_the_same_kid_is_refused(services: Services) -> None:
    forged = jwt.encode(
        _claims(services),
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": _kid(services)},
    )
    with pytest.raises(Unauthenticated, match="rejected"):
        services.verifier.verify(forged)


@pytest.mark.parametrize("header", ["jku", "x5u", "jwk", "x5c"])
def test_token_that_names_its_own_key_is_refused(services: Services, header: str) -> None:
    token = _signed(services, _claims(services), **{header: "https://attacker.example/keys"})
    with pytest.raises(Unauthenticated, match="names its own key"):
        services.verifier.verify(token)


def test_expired_token_is_refused_once_leeway_passes(services: Services, clock: FixedClock) -> None:
    token = mint(services, ttl=timedelta(minutes=5))
    clock.advance(timedelta(minutes=5, seconds=29))
    assert services.verifier.verify(token).subject == "anna"  # inside the 30 s leeway
    clock.advance(timedelta(seconds=2))
    with pytest.raises(Unauthenticated, match="expired"):
        services.verifier.verify(token)


def test_token_from_the_future_is_refused(services: Services) -> None:
    later = int(services.clock.now().timestamp()) + 3600
    token = _signed(services, _claims(services, nbf=later, iat=later, exp=later + 600))
    with pytest.raises(Unauthenticated, match="not valid yet"):
        services.verifier.verify(token)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"iss": "https://evil.example"}, "issuer is not trusted"),
        ({"aud": "another-service"}, "rejected"),
        ({"org": None}, "org"),
        ({"country": None}, "country"),
        ({"country": "XX"}, "not an ISO 3166-1 code"),
        ({"exp": None}, "rejected"),
        ({"roles": "admin"}, "must be a list"),
    ],
    ids=[
        "untrusted-issuer",
        "wrong-audience",
        "no-org",
        "no-country",
        "fake-country",
        "no-expiry",
        "roles-not-a-list",
    ],
)
def test_token_with_bad_claims_is_refused(
    services: Services, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        services.verifier.verify(_signed(services, _claims(services, **overrides)))


def test_unknown_role_grants_nothing(services: Services) -> None:
    token = _signed(services, _claims(services, roles=["ml", "superuser"]))
    assert services.verifier.verify(token).roles == {Role.ML}


def test_oversized_token_is_refused_before_parsing(services: Services) -> None:
    token = _signed(services, _claims(services, padding="x" * 9000))
    with pytest.raises(Unauthenticated, match="8 KiB"):
        services.verifier.verify(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "\u00e9." * 5])
def test_malformed_token_is_refused(services: Services, garbage: str) -> None:
    with pytest.raises(Unauthenticated):
        services.verifier.verify(garbage)


def test_unknown_kid_is_refused(services: Services) -> None:
    token = jwt.encode(
        _claims(services), _dev_key(services), algorithm="EdDSA", headers={"kid": "rotated-away"}
    )
    with pytest.raises(Unauthenticated, match="key id"):
        services.verifier.verify(token)


def test_leeway_over_a_minute_is_a_configuration_error(services: Services) -> None:
    with pytest.raises(InvalidInput):
        TokenVerifier([], services.clock, timedelta(seconds=61))


def test_no_token_is_trusted_without_issuers(services: Services) -> None:
    verifier = TokenVerifier([], services.clock)
    with pytest.raises(Unauthenticated, match="not trusted"):
        verifier.verify(mint(services))
