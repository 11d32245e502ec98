"""Quotas: an organisation or a subject past its limit gets 429 with Retry-After, audited."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx

from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.identity.principal import Role
from tests.conftest import MODEL, mint

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


def _grant(url: str, services: Services, subject: str = "anna") -> httpx.Response:
    token = mint(services, subject=subject)
    return httpx.post(
        f"{url}/v1/grants",
        json={"model": MODEL, "recipient_key": RECIPIENT},
        headers={"Authorization": f"Bearer {token}"},
    )


def _set(url: str, services: Services, path: str, **limits: int | None) -> httpx.Response:
    admin = {"Authorization": f"Bearer {mint(services, subject='root', roles=(Role.ADMIN,))}"}
    return httpx.put(f"{url}/v1/quotas/{path}", json=limits, headers=admin)


def test_organisation_past_its_hourly_grants_waits(
    gateway_url: str, catalog_ready: Services, clock: FixedClock
) -> None:
    assert _set(gateway_url, catalog_ready, "org/rhein", grants_per_hour=2).status_code == 200
    assert _grant(gateway_url, catalog_ready, "anna").status_code == 201
    clock.advance(timedelta(minutes=10))
    assert _grant(gateway_url, catalog_ready, "ben").status_code == 201
    refused = _grant(gateway_url, catalog_ready, "carl")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(50 * 60)  # when the first grant leaves the hour
    assert "org quota" in refused.json()["detail"]
    [logged] = catalog_ready.audit.query(event="grant.quota")
    assert logged.as_dict()["quota"]["retry_after"] == 3000
    assert len(catalog_ready.audit.query(event="grant.allow")) == 2
    clock.advance(timedelta(minutes=50))
    assert _grant(gateway_url, catalog_ready, "carl").status_code == 201


def test_subject_past_its_daily_bytes_is_refused_before_anything_is_granted(
    gateway_url: str, catalog_ready: Services
) -> None:
    first = _grant(gateway_url, catalog_ready)
    size = sum(f["size"] for f in first.json()["files"])
    assert (
        _set(gateway_url, catalog_ready, "subject/anna", bytes_per_day=size + 1).status_code == 200
    )
    assert _grant(gateway_url, catalog_ready).status_code == 429
    assert _grant(gateway_url, catalog_ready, "ben").status_code == 201  # another subject


def test_quota_changes_are_admin_only_and_audited(
    gateway_url: str, catalog_ready: Services
) -> None:
    ml = {"Authorization": f"Bearer {mint(catalog_ready)}"}
    assert (
        httpx.put(
            f"{gateway_url}/v1/quotas/org/rhein", json={"grants_per_hour": 0}, headers=ml
        ).status_code
        == 403
    )
    assert _set(gateway_url, catalog_ready, "team/rhein", grants_per_hour=1).status_code == 422
    assert _set(gateway_url, catalog_ready, "org/rhein", grants_per_hour=-1).status_code == 422
    assert _set(gateway_url, catalog_ready, "org/rhein", grants_per_hour=0).status_code == 200
    [change] = catalog_ready.audit.query(event="quota.set")
    assert change.as_dict()["quota"] == {
        "scope": "org",
        "key": "rhein",
        "grants_per_hour": 0,
        "bytes_per_day": None,
    }
    assert _grant(gateway_url, catalog_ready).status_code == 429
