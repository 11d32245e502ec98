"""Tokens checked in memory on the event loop: only when nothing would wait, and never looser.

``verify_held`` answers for a token verified in the last minute with keys
the gateway holds; for anything that would fetch keys or write to the
database it answers None, and the request goes to a thread for ``verify``.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway.clock import FixedClock
from gateway.errors import TokenExpired, Unauthenticated
from gateway.identity.issuers import TrustedIssuer
from gateway.identity.jwks import RemoteJwks
from gateway.identity.tokens import Presentation, TokenVerifier
from tests.identity.idp import AUDIENCE, ISSUER, IdentityProvider

TTL = timedelta(minutes=5)
ALGORITHMS = ("ES256",)
BEARER = Presentation(scheme="bearer")


def _verifier(
    idp: IdentityProvider, clock: FixedClock, *, one_time: bool = False
) -> tuple[TokenVerifier, RemoteJwks]:
    jwks = RemoteJwks(idp.url, ALGORITHMS, clock, ttl=TTL)
    issuer = TrustedIssuer(
        issuer=ISSUER,
        audience=AUDIENCE,
        jwks=jwks,
        algorithms=ALGORITHMS,
        one_time_tokens=one_time,
    )
    return TokenVerifier([issuer], clock), jwks


def test_a_token_seen_before_is_checked_in_memory_without_a_fetch(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    token = idp.token("key-1", clock.now())
    assert verifier.verify_held(token, BEARER) is None  # never seen: verify it in a thread
    assert jwks.fetches == 0
    principal = verifier.verify(token, BEARER)
    fetched = jwks.fetches
    assert verifier.verify_held(token, BEARER) == principal
    assert jwks.fetches == fetched


def test_times_are_checked_in_memory_too(idp: IdentityProvider, clock: FixedClock) -> None:
    verifier, _ = _verifier(idp, clock)
    token = idp.token("key-1", clock.now(), ttl=timedelta(seconds=10))
    verifier.verify(token, BEARER)
    # Past its expiry and the 30 s leeway, while its signature is still remembered.
    clock.advance(timedelta(seconds=10 + 31))
    with pytest.raises(TokenExpired):
        verifier.verify_held(token, BEARER)


def test_keys_due_for_a_refresh_send_the_token_to_the_full_check(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    token = idp.token("key-1", clock.now(), ttl=timedelta(hours=1))
    verifier.verify(token, BEARER)
    idp.retire("key-1")
    clock.advance(TTL)
    # The held keys are due for a refresh: only the full check may fetch them.
    assert verifier.verify_held(token, BEARER) is None
    with pytest.raises(Unauthenticated, match="key id"):
        verifier.verify(token, BEARER)
    assert jwks.fetches == 2
    # After the refresh the withdrawn key is gone from memory as well.
    assert verifier.verify_held(token, BEARER) is None


def test_what_must_be_recorded_is_never_checked_in_memory(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    one_time, _ = _verifier(idp, clock, one_time=True)
    with pytest.raises(Unauthenticated, match="not available"):
        one_time.verify(idp.token("key-1", clock.now()), BEARER)  # no replay guard here
    assert one_time.verify_held(idp.token("key-1", clock.now()), BEARER) is None

    verifier, _ = _verifier(idp, clock)
    bound = idp.token("key-1", clock.now(), cnf={"jkt": "thumbprint"})
    with pytest.raises(Unauthenticated, match="DPoP"):
        verifier.verify(bound, BEARER)
    # Its signature is now remembered, but a DPoP proof is single-use: a thread checks it.
    assert verifier.verify_held(bound, Presentation(scheme="dpop", dpop_proof="x")) is None


def test_a_remembered_token_presented_the_wrong_way_is_refused_in_memory(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, _ = _verifier(idp, clock)
    token = idp.token("key-1", clock.now())
    verifier.verify(token, BEARER)
    with pytest.raises(Unauthenticated, match="only a DPoP-bound token"):
        verifier.verify_held(token, Presentation(scheme="dpop", dpop_proof="x"))


def test_a_key_fetch_under_way_never_holds_up_the_check_in_memory(
    idp: IdentityProvider, clock: FixedClock
) -> None:
    verifier, jwks = _verifier(idp, clock)
    token = idp.token("key-1", clock.now())
    principal = verifier.verify(token, BEARER)
    # Another thread is fetching keys (``key`` holds the lock through the fetch):
    # the event loop is answered at once, "ask in a thread", instead of waiting.
    with jwks._lock:
        assert verifier.verify_held(token, BEARER) is None
    assert verifier.verify_held(token, BEARER) == principal
