"""A grant belongs to (issuer, subject): the same names from another trusted issuer own nothing."""

from __future__ import annotations

import base64

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import MODEL, mint
from tests.identity.idp import IdentityProvider


def test_same_subject_and_org_from_another_issuer_cannot_read_or_revoke_a_grant(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider
) -> None:
    recipient = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
    owner = {"Authorization": f"Bearer {mint(catalog_ready, subject='anna', org='rhein')}"}
    granted = httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, "recipient_key": recipient.decode()},
        headers=owner,
    )
    assert granted.status_code == 201, granted.text
    grant_id = granted.json()["id"]

    # Another trusted issuer whose user is also called "anna" of "rhein".
    namesake = {"Authorization": f"Bearer {idp.token('key-1', catalog_ready.clock.now())}"}
    assert httpx.get(f"{gateway_url}/v1/grants/{grant_id}", headers=namesake).status_code == 404
    revoke = httpx.delete(f"{gateway_url}/v1/grants/{grant_id}", headers=namesake)
    assert revoke.status_code == 404
    assert catalog_ready.audit.query(event="grant.revoke") == []

    mine = httpx.get(f"{gateway_url}/v1/grants/{grant_id}", headers=owner)
    assert mine.status_code == 200 and mine.json()["state"] == "active"


def test_a_namesake_from_another_issuer_neither_uses_nor_exhausts_a_subject_quota(
    gateway_url: str, catalog_ready: Services, idp: IdentityProvider
) -> None:
    admin = {"Authorization": f"Bearer {mint(catalog_ready, subject='root', roles=(Role.ADMIN,))}"}
    assert (
        httpx.put(
            f"{gateway_url}/v1/quotas/subject/anna", json={"grants_per_hour": 1}, headers=admin
        ).status_code
        == 200
    )
    recipient = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
    body = {"model": MODEL, "recipient_key": recipient.decode()}
    namesake = {"Authorization": f"Bearer {idp.token('key-1', catalog_ready.clock.now())}"}
    assert httpx.post(f"{gateway_url}/v1/grants", json=body, headers=namesake).status_code == 201
    owner = {"Authorization": f"Bearer {mint(catalog_ready, subject='anna', org='rhein')}"}
    assert httpx.post(f"{gateway_url}/v1/grants", json=body, headers=owner).status_code == 201
    assert httpx.post(f"{gateway_url}/v1/grants", json=body, headers=owner).status_code == 429
