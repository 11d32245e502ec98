"""Exemptions are remembered per organisation for a second, but a revoked one never opens a door.

Two replicas on one database: the one serving grants has remembered the
organisation's exemptions, the other revokes the license they rest on.
"""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.bootstrap import Services, build_services
from gateway.clock import FixedClock
from gateway.errors import PolicyDenied
from gateway.exemptions import Proposal
from gateway.identity.principal import Principal, Role
from gateway.policy.exemptions import ExemptionKind
from gateway.service import GrantRequest
from tests.conftest import MODEL, operator


def _admin(name: str) -> Principal:
    return Principal(name, "hq", "DE", frozenset({Role.ADMIN}), None, "weightgate-dev")


def _request() -> GrantRequest:
    key = X25519PrivateKey.generate().public_key().public_bytes_raw()
    return GrantRequest(
        model=MODEL, revision=None, files=None, recipient_key=base64.b64encode(key).decode()
    )


def test_a_license_revoked_on_another_replica_opens_nothing_within_the_cache_second(
    catalog_ready: Services, clock: FixedClock
) -> None:
    services = catalog_ready
    proposal = Proposal(
        org="deccan",
        kind=ExemptionKind.LICENSE.value,
        reference="D-1",
        countries=["IN"],
        models=[MODEL],
        until=clock.now().date() + timedelta(days=365),
        reason="BIS license",
    )
    proposed = services.exemptions.propose(_admin("alice"), proposal, operator())
    services.exemptions.approve(_admin("bob"), proposed["id"], operator())
    requester = Principal("priya", "deccan", "IN", frozenset({Role.ML}), None, "weightgate-dev")
    granted = services.grants.request_grant(requester, _request(), operator())
    assert granted.body["decision"]["effect"] == "allow"  # and the list is now remembered

    other = build_services(services.settings, clock)
    try:
        other.exemptions.revoke(_admin("carol"), proposed["id"], operator())
    finally:
        other.close()
    # Within the same second: the remembered list still holds the license, but
    # the grant re-reads it in its transaction, and is decided again: denied.
    with pytest.raises(PolicyDenied):
        services.grants.request_grant(requester, _request(), operator())
    allows = services.audit.query(event="grant.allow")
    assert len(allows) == 1
    assert len(services.audit.query(event="grant.deny")) == 1
