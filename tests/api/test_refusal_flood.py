"""A flood of refused tokens cannot flood the audit log, and the reviewer still sees all of it."""

from __future__ import annotations

import httpx

from gateway.audit.events import RequestContext
from gateway.audit.rejections import OVERFLOW, WINDOW, RejectionLedger
from gateway.bootstrap import Services
from gateway.clock import FixedClock

FLOOD = 200


def test_a_flood_of_forged_tokens_costs_two_entries_per_source_and_reason(
    gateway_url: str, catalog_ready: Services, clock: FixedClock
) -> None:
    before = catalog_ready.audit.tree_state()[0]
    with httpx.Client() as client:
        for number in range(FLOOD):
            response = client.get(
                f"{gateway_url}/v1/models", headers={"Authorization": f"Bearer forged.{number}.x"}
            )
            assert response.status_code == 401
        missing = client.get(f"{gateway_url}/v1/models")
        assert missing.status_code == 401
    # The first of each reason is in full; the rest are only counted so far.
    assert catalog_ready.audit.tree_state()[0] == before + 2
    [first, other] = [row.as_dict() for row in catalog_ready.audit.query(event="auth.reject")]
    assert first["reason"] == "token is malformed" and first["token"].startswith("hmac-sha256:")
    assert other["reason"] == "missing Authorization header"

    clock.advance(WINDOW)
    catalog_ready.rejections.flush()
    [summary] = [row.as_dict() for row in catalog_ready.audit.query(event="auth.reject.summary")]
    assert summary["refused"] == FLOOD - 1
    assert summary["reason"] == "token is malformed"
    assert summary["client"]["address"] == "127.0.0.1"
    assert catalog_ready.audit.tree_state()[0] == before + 3

    # A new window starts in full again.
    with httpx.Client() as client:
        client.get(f"{gateway_url}/v1/models", headers={"Authorization": "Bearer forged.again"})
    assert len(catalog_ready.audit.query(event="auth.reject")) == 3


def test_many_sources_share_one_overflow_count_beyond_the_bound(
    services: Services, clock: FixedClock
) -> None:
    ledger = RejectionLedger(services.audit, clock, limit=2)
    for number in range(10):
        context = RequestContext(request_id=f"r{number}", client_address=f"198.51.100.{number}")
        ledger.record(context, "token is malformed", {"path": "/v1/models"})
    # Two sources tracked, the third opens the shared overflow pair; seven more count there.
    rejects = [row.as_dict() for row in services.audit.query(event="auth.reject")]
    assert [r["client"]["address"] for r in rejects] == [f"198.51.100.{n}" for n in range(3)]
    ledger.flush(everything=True)
    [summary] = [row.as_dict() for row in services.audit.query(event="auth.reject.summary")]
    assert summary["client"]["address"] == OVERFLOW[0] and summary["refused"] == 7
    assert summary["reason"] == OVERFLOW[1]
