"""Sender-constrained tokens (DPoP, RFC 9449) and one-time tokens, against the running gateway."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.bootstrap import Services, build_services
from gateway.client.fetch import fetch
from gateway.client.gateway_api import GatewayClient
from gateway.clock import FixedClock
from gateway.errors import Unauthenticated
from gateway.identity.dpop import ProofKey, key_thumbprint, load_proof_key, make_proof
from tests.conftest import MODEL
from tests.identity.idp import ISSUER, IdentityProvider

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()
DPOP_ISSUER = f"{ISSUER}/dpop"


@pytest.fixture
def clock() -> FixedClock:
    # The fetch client signs its proofs with the real time, so this gateway runs on it too.
    return FixedClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def holder() -> ProofKey:
    return ec.generate_private_key(ec.SECP256R1())


def _bound(idp: IdentityProvider, services: Services, key: ProofKey, **claims: Any) -> str:
    return idp.token(
        "key-1", services.clock.now(), iss=DPOP_ISSUER, cnf={"jkt": key_thumbprint(key)}, **claims
    )


def _grant(
    url: str,
    services: Services,
    token: str,
    key: ProofKey | None,
    *,
    proof: str | None = None,
    scheme: str = "DPoP",
) -> httpx.Response:
    target = f"{services.settings.url}/v1/grants"
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is None and key is not None:
        proof = make_proof(
            key, method="POST", url=target, access_token=token, now=services.clock.now()
        )
    if proof is not None:
        headers["DPoP"] = proof
    return httpx.post(
        f"{url}/v1/grants", json={"model": MODEL, "recipient_key": RECIPIENT}, headers=headers
    )


def test_bound_token_with_a_fresh_proof_is_accepted(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    response = _grant(gateway_url, catalog_ready, _bound(idp, catalog_ready, holder), holder)
    assert response.status_code == 201, response.text


def test_stolen_bound_token_used_as_a_bearer_token_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    token = _bound(idp, catalog_ready, holder)
    response = _grant(gateway_url, catalog_ready, token, None, scheme="Bearer")
    assert response.status_code == 401
    assert "DPoP-bound" in response.json()["detail"]


def test_stolen_token_with_the_thiefs_own_proof_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    token = _bound(idp, catalog_ready, holder)
    thief = Ed25519PrivateKey.generate()
    response = _grant(gateway_url, catalog_ready, token, thief)
    assert response.status_code == 401
    assert "not bound to" in response.json()["detail"]


def test_replayed_proof_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    token = _bound(idp, catalog_ready, holder)
    proof = make_proof(
        holder,
        method="POST",
        url=f"{catalog_ready.settings.url}/v1/grants",
        access_token=token,
        now=catalog_ready.clock.now(),
    )
    assert _grant(gateway_url, catalog_ready, token, holder, proof=proof).status_code == 201
    replay = _grant(gateway_url, catalog_ready, token, holder, proof=proof)
    assert replay.status_code == 401
    assert "already used" in replay.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "message"),
    [
        ("GET", "/v1/grants", "another method or URL"),
        ("POST", "/v1/policy/explain", "another method or URL"),
    ],
    ids=["other-method", "other-url"],
)
def test_proof_for_another_request_is_refused(
    gateway_url: str,
    catalog_ready: Services,
    idp: IdentityProvider,
    holder: ProofKey,
    method: str,
    path: str,
    message: str,
) -> None:
    token = _bound(idp, catalog_ready, holder)
    proof = make_proof(
        holder,
        method=method,
        url=f"{catalog_ready.settings.url}{path}",
        access_token=token,
        now=catalog_ready.clock.now(),
    )
    response = _grant(gateway_url, catalog_ready, token, holder, proof=proof)
    assert response.status_code == 401
    assert message in response.json()["detail"]


def test_proof_for_another_token_or_from_the_past_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    token = _bound(idp, catalog_ready, holder)
    other = _bound(idp, catalog_ready, holder, jti="other")
    target = f"{catalog_ready.settings.url}/v1/grants"
    wrong_token = make_proof(
        holder, method="POST", url=target, access_token=other, now=catalog_ready.clock.now()
    )
    stale = make_proof(
        holder,
        method="POST",
        url=target,
        access_token=token,
        now=catalog_ready.clock.now() - timedelta(minutes=5),
    )
    for proof, message in ((wrong_token, "another access token"), (stale, "not fresh")):
        response = _grant(gateway_url, catalog_ready, token, holder, proof=proof)
        assert response.status_code == 401
        assert message in response.json()["detail"]


def test_unbound_token_from_a_dpop_only_issuer_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider
) -> None:
    token = idp.token("key-1", catalog_ready.clock.now(), iss=DPOP_ISSUER)
    response = _grant(gateway_url, catalog_ready, token, None, scheme="Bearer")
    assert response.status_code == 401
    assert "must be DPoP-bound" in response.json()["detail"]


def test_proof_replayed_to_another_replica_is_refused(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider, holder: ProofKey
) -> None:
    # A second gateway process on the same database: the replay cache is shared.
    port = free_port()
    replica = build_services(catalog_ready.settings, catalog_ready.clock)
    token = _bound(idp, catalog_ready, holder)
    proof = make_proof(
        holder,
        method="POST",
        url=f"{catalog_ready.settings.url}/v1/grants",
        access_token=token,
        now=catalog_ready.clock.now(),
    )
    try:
        with serving(create_app(replica), "127.0.0.1", port) as other_url:
            assert _grant(gateway_url, catalog_ready, token, holder, proof=proof).status_code == 201
            assert _grant(other_url, catalog_ready, token, holder, proof=proof).status_code == 401
    finally:
        replica.close()


def test_one_time_token_works_once(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider
) -> None:
    token = idp.token("key-1", catalog_ready.clock.now(), iss=f"{ISSUER}/once", jti="once-1")
    assert _grant(gateway_url, catalog_ready, token, None, scheme="Bearer").status_code == 201
    again = _grant(gateway_url, catalog_ready, token, None, scheme="Bearer")
    assert again.status_code == 401
    assert "already used" in again.json()["detail"]
    no_jti = idp.token("key-1", catalog_ready.clock.now(), iss=f"{ISSUER}/once", jti=None)
    assert _grant(gateway_url, catalog_ready, no_jti, None, scheme="Bearer").status_code == 401


@pytest.mark.usefixtures("gateway_url")
def test_fetch_proves_possession_when_the_token_is_bound(
    catalog_ready: Services, idp: IdentityProvider, tmp_path: Path
) -> None:
    pem = tmp_path / "dpop.pem"
    pem.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key = load_proof_key(pem)
    token = _bound(idp, catalog_ready, key)
    with GatewayClient(catalog_ready.settings.url, token, dpop_key=key) as client:
        files = fetch(client, MODEL, None, tmp_path / "out")
    assert len(files) == 3
    with (
        GatewayClient(catalog_ready.settings.url, token) as bearer,
        pytest.raises(Unauthenticated) as refused,
    ):
        fetch(bearer, MODEL, None, tmp_path / "out2")
    assert "DPoP-bound" in str(refused.value)
