"""Receipts after the fact: a grant never waits for a checkpoint; its receipt says when to ask."""

from __future__ import annotations

import base64

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.bootstrap import Services
from tests.conftest import MODEL, mint


def test_a_grant_is_answered_before_any_checkpoint_and_its_receipt_follows(
    gateway_url: str, catalog_ready: Services
) -> None:
    recipient = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
    granted = httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, "recipient_key": recipient.decode()},
        headers={"Authorization": f"Bearer {mint(catalog_ready)}"},
    )
    assert granted.status_code == 201, granted.text
    index = granted.json()["audit_index"]
    covered = catalog_ready.audit.latest_checkpoint()
    assert covered is None  # the grant did not wait for one

    pending = httpx.get(f"{gateway_url}/v1/audit/receipts/{index}")
    assert pending.status_code == 404
    assert pending.headers["content-type"] == "application/problem+json"
    assert pending.json()["code"] == "not_yet_covered"
    assert int(pending.headers["retry-after"]) >= 1

    beyond = httpx.get(f"{gateway_url}/v1/audit/receipts/{index + 1000}")
    assert beyond.status_code == 404 and beyond.json()["code"] == "not_found"
    assert "retry-after" not in beyond.headers

    catalog_ready.publisher.publish()
    receipt = httpx.get(f"{gateway_url}/v1/audit/receipts/{index}")
    assert receipt.status_code == 200
    assert receipt.text.startswith("c2sp.org/tlog-proof@v1\n")
    assert f"index {index}" in receipt.text
