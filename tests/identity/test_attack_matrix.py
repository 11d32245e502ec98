"""The front door under attack: each forged, stale or malformed credential is a logged 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import MODEL, mint
from tests.identity.idp import IdentityProvider

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _alg_none(idp: IdentityProvider, services: Services) -> str:
    valid = idp.token("key-1", services.clock.now())
    claims = jwt.decode(valid, options={"verify_signature": False})
    return f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'key-1'})}.{_b64(claims)}."


def _key_confusion(idp: IdentityProvider, services: Services) -> str:
    # HS256 keyed with the issuer's public key, which anyone can download.
    key, _ = idp.keys["key-1"]
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = jwt.decode(
        idp.token("key-1", services.clock.now()), options={"verify_signature": False}
    )
    # PyJWT refuses to do this, which is the point; the attacker does it by hand.
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'key-1'})}.{_b64(claims)}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _bad_signature(idp: IdentityProvider, services: Services) -> str:
    claims = jwt.decode(
        idp.token("key-1", services.clock.now()), options={"verify_signature": False}
    )
    return jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": "key-1"}
    )


def _with(**claims: Any) -> Callable[[IdentityProvider, Services], str]:
    return lambda idp, services: idp.token("key-1", services.clock.now(), **claims)


def _headers(**headers: Any) -> Callable[[IdentityProvider, Services], str]:
    return lambda idp, services: idp.token("key-1", services.clock.now(), headers=headers)


ATTACKS: dict[str, tuple[Callable[[IdentityProvider, Services], str], str]] = {
    "alg-none": (_alg_none, "algorithm"),
    "hmac-with-the-public-key": (_key_confusion, "algorithm"),
    "jku-header-pointing-elsewhere": (_headers(jku="https://evil.test/jwks"), "names its own key"),
    "x5u-header-pointing-elsewhere": (_headers(x5u="https://evil.test/cert"), "names its own key"),
    "embedded-jwk-header": (_headers(jwk={"kty": "oct", "k": "AAAA"}), "names its own key"),
    "expired": (
        lambda idp, s: idp.token(
            "key-1", s.clock.now() - timedelta(hours=1), ttl=timedelta(minutes=10)
        ),
        "expired",
    ),
    "not-yet-valid": (_with(nbf=2_000_000_000), "not valid yet"),
    "wrong-issuer": (_with(iss="https://evil.test"), "issuer is not trusted"),
    "wrong-audience": (_with(aud="another-service"), "rejected"),
    "bad-signature": (_bad_signature, "rejected"),
    "unknown-kid-after-refetch": (_headers(kid="key-404"), "key id"),
    "oversized": (_with(padding="x" * 9000), "8 KiB"),
    "missing-subject": (_with(sub=None), "rejected"),
    "missing-org": (_with(org=None), "org"),
    "missing-country": (_with(country=None), "country"),
    "country-not-iso": (_with(country="XX"), "ISO 3166-1"),
    "country-as-number": (_with(country=276), "country"),
    # Claims sized or spelled to break what stores or shows them (columns,
    # batched audit inserts, terminals): refused at the door, never stored.
    "org-longer-than-an-org-id": (_with(org="o" * 65), "org"),
    "org-with-spaces": (_with(org="rhein ai"), "org"),
    "subject-too-long": (_with(sub="s" * 257), "sub"),
    "subject-empty": (_with(sub=""), "sub"),
    "subject-with-terminal-escapes": (_with(sub="anna\x1b[2J\x1b[31madmin"), "sub"),
    "subject-with-newline": (_with(sub="anna\nadmin"), "sub"),
    "jti-too-long": (_with(jti="j" * 257), "jti"),
    "roles-flooded": (_with(roles=["ml"] * 100), "roles"),
    "exp-beyond-any-calendar": (_with(exp=10**20), "exp"),
    "iat-negative": (_with(iat=-1), "iat"),
    "lifetime-without-bound": (
        lambda idp, s: idp.token("key-1", s.clock.now(), ttl=timedelta(days=3650)),
        "lifetime",
    ),
}


@pytest.mark.parametrize("attack", ATTACKS, ids=list(ATTACKS))
def test_forged_or_stale_token_is_401_and_audited(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, attack: str
) -> None:
    make, reason = ATTACKS[attack]
    token = make(idp, catalog_ready)
    response = httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, "recipient_key": RECIPIENT},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]
    [rejection] = catalog_ready.audit.query(event="auth.reject")
    entry = rejection.as_dict()
    assert entry["token"].startswith("hmac-sha256:")
    assert token not in rejection.entry.decode()
    assert catalog_ready.audit.query(event="grant.allow") == []


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer \t.", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Token abc", "bearer"],
    ids=[
        "absent",
        "empty",
        "scheme-only",
        "blank-token",
        "basic",
        "unknown-scheme",
        "lowercase-only",
    ],
)
def test_malformed_authorization_header_is_401_and_audited(
    gateway_url: str, catalog_ready: Services, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = httpx.get(f"{gateway_url}/v1/models", headers=headers)
    assert response.status_code == 401
    assert len(catalog_ready.audit.query(event="auth.reject")) == 1


def test_unknown_kid_refetches_the_jwks_at_most_once_per_interval(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider
) -> None:
    assert (
        httpx.get(
            f"{gateway_url}/v1/models",
            headers={"Authorization": f"Bearer {idp.token('key-1', catalog_ready.clock.now())}"},
        ).status_code
        == 200
    )
    before = idp.jwks_requests
    forged = idp.token("key-1", catalog_ready.clock.now(), headers={"kid": "made-up"})
    for _ in range(5):
        response = httpx.get(
            f"{gateway_url}/v1/models", headers={"Authorization": f"Bearer {forged}"}
        )
        assert response.status_code == 401
    assert idp.jwks_requests - before <= 1


def test_missing_role_is_403_naming_the_role(gateway_url: str, catalog_ready: Services) -> None:
    response = httpx.get(
        f"{gateway_url}/v1/audit/entries",
        headers={"Authorization": f"Bearer {mint(catalog_ready, roles=(Role.ML,))}"},
    )
    assert response.status_code == 403
    assert "security or admin role" in response.json()["detail"]
