"""Key rotation at the identity provider, and what the gateway does when the provider is down."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.clock import FixedClock
from gateway.errors import InvalidInput, Unauthenticated
from gateway.identity.issuers import TrustedIssuer
from gateway.identity.jwks import RemoteJwks, check_jwks_url
from gateway.identity.tokens import TokenVerifier
from tests.identity.idp import AUDIENCE, ISSUER, IdentityProvider

TTL = timedelta(minutes=5)
INTERVAL = timedelta(seconds=30)
MAX_STALE = timedelta(hours=1)
ALGORITHMS = ("RS256", "ES256", "EdDSA")


def _verifier(idp: IdentityProvider, clock: FixedClock) -> tuple[TokenVerifier, RemoteJwks]:
    jwks = RemoteJwks(
        idp.url, ALGORITHMS, clock, ttl=TTL, refetch_interval=INTERVAL, max_stale=MAX_STALE
    )
    issuer = TrustedIssuer(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, algorithms=ALGORITHMS)
    return TokenVerifier([issuer], clock), jwks


def test_rotation_new_key_works_at_once_old_key_until_it_leaves(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    old_token = idp.token("key-1", clock.now(), ttl=timedelta(hours=2))
    assert verifier.verify(old_token).subject == "anna"

    new_kid = idp.rotate()
    clock.advance(INTERVAL)
    assert (
        verifier.verify(idp.token(new_kid, clock.now())).subject == "anna"
    )  # unknown kid: refetch
    assert verifier.verify(old_token).subject == "anna"  # still published

    idp.retire("key-1")
    clock.advance(TTL - timedelta(seconds=1))
    assert verifier.verify(old_token).subject == "anna"  # cached until the TTL runs out
    clock.advance(timedelta(seconds=1))
    with pytest.raises(Unauthenticated, match="key id"):
        verifier.verify(old_token)
    assert jwks.fetches == 3


def test_forged_kids_cannot_make_the_gateway_hammer_the_provider(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    verifier.verify(idp.token("key-1", clock.now()))
    for number in range(20):
        forged = idp.token("key-1", clock.now(), headers={"kid": f"forged-{number}"})
        with pytest.raises(Unauthenticated):
            verifier.verify(forged)
    assert jwks.fetches == 1  # the load itself counts as this interval's fetch
    clock.advance(INTERVAL)
    for number in range(20):
        with pytest.raises(Unauthenticated):
            verifier.verify(idp.token("key-1", clock.now(), headers={"kid": f"again-{number}"}))
    assert jwks.fetches == 2


def test_provider_outage_keeps_last_good_keys_until_they_are_too_old(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    verifier.verify(idp.token("key-1", clock.now()))
    idp.up = False
    clock.advance(TTL * 3)
    assert verifier.verify(idp.token("key-1", clock.now())).subject == "anna"
    assert jwks.failures >= 1
    clock.advance(MAX_STALE)
    with pytest.raises(Unauthenticated):
        verifier.verify(idp.token("key-1", clock.now()))  # fail closed
    idp.up = True
    clock.advance(INTERVAL)
    assert verifier.verify(idp.token("key-1", clock.now())).subject == "anna"


def test_provider_down_from_the_start_trusts_nothing(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    idp.up = False
    verifier, _ = _verifier(idp, clock)
    with pytest.raises(Unauthenticated):
        verifier.verify(idp.token("key-1", clock.now()))


def test_published_symmetric_key_is_never_used(idp: IdentityProvider, clock: FixedClock) -> None:
    original = idp.jwks

    def with_hmac_key() -> dict[str, object]:
        keys = original()
        keys["keys"] = [
            *keys["keys"],
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
        ]
        return keys

    idp.jwks = with_hmac_key  # type: ignore[method-assign]
    verifier, jwks = _verifier(idp, clock)
    assert jwks.key("hmac") is None
    assert verifier.verify(idp.token("key-1", clock.now())).subject == "anna"


@pytest.mark.parametrize(
    "url", ["http://idp.example.com/jwks", "ftp://127.0.0.1/jwks", "file:///etc/jwks", "https://"]
)
def test_jwks_url_must_be_https_except_on_loopback(url: str) -> None:
    with pytest.raises(InvalidInput, match="https"):
        check_jwks_url(url)
    assert check_jwks_url("http://127.0.0.1:9/jwks") == "http://127.0.0.1:9/jwks"
    assert check_jwks_url("https://idp.example.com/jwks") == "https://idp.example.com/jwks"
