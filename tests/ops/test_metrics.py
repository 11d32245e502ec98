"""What an operator alerts on moves when it happens: decisions, latencies, refusals, failures.

Over real HTTP against a gateway in this process (SQLite, local storage and
keystore), reading the process's Prometheus registry before and after.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from prometheus_client import REGISTRY
from sqlalchemy import update

from gateway.api.background import free_port
from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.identity.jwks import RemoteJwks
from gateway.identity.principal import Role
from gateway.notify import WebhookNotifier
from gateway.state.tables import TreeState
from tests.conftest import MODEL, mint


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        yield client


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def ask(http: httpx.Client, token: str) -> httpx.Response:
    recipient = X25519PrivateKey.generate().public_key().public_bytes_raw()
    body: dict[str, Any] = {"model": MODEL, "recipient_key": base64.b64encode(recipient).decode()}
    return http.post("/v1/grants", json=body, headers={"Authorization": f"Bearer {token}"})


def test_a_grant_counts_an_allow_at_its_tier_and_times_grant_and_redirect(
    http: httpx.Client, catalog_ready: Services
) -> None:
    allowed = sample("weightgate_decisions_total", effect="allow", tier="1")
    timed = sample("weightgate_grant_seconds_count", outcome="ok")
    redirects = sample("weightgate_redirect_seconds_count", outcome="ok")
    refused = sample("weightgate_redirect_seconds_count", outcome="forbidden")

    granted = ask(http, mint(catalog_ready))
    assert granted.status_code == 201, granted.text
    url = granted.json()["files"][0]["url"]
    assert httpx.get(url).status_code == 307
    assert httpx.get(url.replace("cap=", "cap=00")).status_code == 403

    assert sample("weightgate_decisions_total", effect="allow", tier="1") == allowed + 1
    assert sample("weightgate_grant_seconds_count", outcome="ok") == timed + 1
    assert sample("weightgate_redirect_seconds_count", outcome="ok") == redirects + 1
    assert sample("weightgate_redirect_seconds_count", outcome="forbidden") == refused + 1


def test_a_tier3_parent_behind_a_tier1_subsidiary_counts_as_a_tier3_deny(
    http: httpx.Client, catalog_ready: Services
) -> None:
    denied = sample("weightgate_decisions_total", effect="deny", tier="3")
    allowed = sample("weightgate_decisions_total", effect="allow", tier="1")
    timed = sample("weightgate_grant_seconds_count", outcome="policy_denied")

    response = ask(http, mint(catalog_ready, subject="x", org="panda-de"))
    assert response.status_code == 403

    assert sample("weightgate_decisions_total", effect="deny", tier="3") == denied + 1
    assert sample("weightgate_decisions_total", effect="allow", tier="1") == allowed
    assert sample("weightgate_grant_seconds_count", outcome="policy_denied") == timed + 1


def test_a_used_up_quota_counts_a_refusal_by_scope_and_no_decision(
    http: httpx.Client, catalog_ready: Services
) -> None:
    admin = {"Authorization": f"Bearer {mint(catalog_ready, roles=(Role.ADMIN,))}"}
    assert http.put("/v1/quotas/org/rhein", json={"grants_per_hour": 0}, headers=admin).is_success
    refusals = sample("weightgate_quota_refusals_total", scope="org")
    decisions = sample("weightgate_decisions_total", effect="allow", tier="1")

    assert ask(http, mint(catalog_ready)).status_code == 429

    assert sample("weightgate_quota_refusals_total", scope="org") == refusals + 1
    assert sample("weightgate_decisions_total", effect="allow", tier="1") == decisions


def test_a_removed_kek_counts_keystore_errors_and_readiness_names_the_keys(
    http: httpx.Client, catalog_ready: Services
) -> None:
    unwraps = sample("weightgate_keystore_errors_total", operation="unwrap", error="unavailable")
    checks = sample("weightgate_keystore_errors_total", operation="check", error="unavailable")
    unready = sample("weightgate_readiness_failures_total", component="keys")
    for kek in (catalog_ready.settings.keys_dir / "kek").glob("*.key"):
        kek.unlink()

    assert ask(http, mint(catalog_ready)).status_code == 503
    ready = http.get("/readyz")

    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert set(ready.json()["failed"]) == {"keys"}
    assert "KEK" in ready.json()["failed"]["keys"]
    assert "keys:" in ready.json()["detail"]
    assert (
        sample("weightgate_keystore_errors_total", operation="unwrap", error="unavailable")
        == unwraps + 1
    )
    assert (
        sample("weightgate_keystore_errors_total", operation="check", error="unavailable")
        == checks + 1
    )
    assert sample("weightgate_readiness_failures_total", component="keys") == unready + 1


def test_readiness_names_the_audit_log_once_its_writer_is_closed(
    http: httpx.Client, catalog_ready: Services
) -> None:
    assert http.get("/readyz").json()["audit"] == "ok"
    catalog_ready.audit.close()

    ready = http.get("/readyz")

    assert ready.status_code == 503
    assert set(ready.json()["failed"]) == {"audit"}
    assert "closed" in ready.json()["failed"]["audit"]


def test_readiness_names_the_audit_log_when_its_tree_head_is_corrupted(
    http: httpx.Client, catalog_ready: Services
) -> None:
    """The last batch failed: readiness tries an empty append, which the writer refuses too."""
    failed = sample("weightgate_audit_appends_refused_total", reason="failed")
    with catalog_ready.engine.begin() as connection:
        connection.execute(update(TreeState).values(root=b"\x00" * 32))

    assert ask(http, mint(catalog_ready)).status_code in {422, 503}
    ready = http.get("/readyz")

    assert ready.status_code == 503
    assert "audit" in ready.json()["failed"]
    assert "corrupted" in ready.json()["failed"]["audit"]
    # The grant's batch and readiness's empty one.
    assert sample("weightgate_audit_appends_refused_total", reason="failed") == failed + 2


def test_an_unreachable_jwks_url_counts_a_refresh_failure(clock: FixedClock) -> None:
    failures = sample("weightgate_jwks_refresh_failures_total")
    nobody = f"http://127.0.0.1:{free_port()}/jwks.json"  # a real port no one listens on
    jwks = RemoteJwks(nobody, ("EdDSA",), clock)

    assert jwks.key("k1") is None

    assert sample("weightgate_jwks_refresh_failures_total") == failures + 1


def test_a_notification_given_up_on_counts_as_dropped(clock: FixedClock) -> None:
    dropped = sample("weightgate_webhook_notifications_dropped_total", reason="gave_up")
    nobody = f"http://127.0.0.1:{free_port()}/hook"
    notifier = WebhookNotifier(nobody, b"secret", clock, attempts=1)
    try:
        notifier({"event": "grant.deny", "index": 0})
        assert notifier.drain()
    finally:
        notifier.close()

    assert sample("weightgate_webhook_notifications_dropped_total", reason="gave_up") == dropped + 1
    assert sample("weightgate_webhook_queue_depth") == 0
