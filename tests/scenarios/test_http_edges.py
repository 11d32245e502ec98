"""What a real `serve` does with requests it must not believe or cannot parse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.bootstrap import build_services
from gateway.clock import SystemClock
from tests.scenarios.deployment import Deployment, deployment, wait_until


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Deployment]:
    with deployment(tmp_path, None) as made:
        yield made


def test_a_loopback_client_cannot_choose_its_address_with_x_forwarded_for(
    site: Deployment,
) -> None:
    # uvicorn by default believes X-Forwarded-For from 127.0.0.1; with no
    # trusted proxy configured, the gateway must not. A forged address would
    # choose the geo-IP country and forge the audited client address.
    server = site.start()
    wait_until(lambda: server.ready() is not None)
    response = httpx.post(
        f"{server.url}/v1/grants",
        json=site.grant_body(),
        headers={
            "Authorization": f"Bearer {site.token()}",
            "X-Forwarded-For": "203.0.113.9",
            "Forwarded": "for=203.0.113.9",
        },
    )
    assert response.status_code == 201, response.text
    server.stop()
    services = build_services(site.settings(), SystemClock())
    try:
        [entry] = services.audit.query(event="grant.allow")
    finally:
        services.close()
    assert entry.as_dict()["client"]["address"] == "127.0.0.1"


def test_a_megabyte_token_gets_a_problem_not_a_bare_text_line(site: Deployment) -> None:
    server = site.start()
    wait_until(lambda: server.ready() is not None)
    response = httpx.get(
        f"{server.url}/v1/models", headers={"Authorization": "Bearer " + "a" * (1 << 20)}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert "64 KiB" in response.json()["detail"]
    assert httpx.get(f"{server.url}/healthz").status_code == 200
