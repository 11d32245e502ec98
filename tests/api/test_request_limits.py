"""Unauthenticated callers cannot make the gateway hold their bodies: every body is capped."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx

from gateway.api.middleware import MAX_BODY_BYTES
from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import mint


def test_a_huge_body_is_refused_by_its_length_before_it_is_read(
    gateway_url: str, catalog_ready: Services
) -> None:
    before = catalog_ready.audit.tree_state()
    response = httpx.post(
        f"{gateway_url}/v1/grants",
        content=b"{" + b" " * (8 << 20) + b"}",
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "too_large"
    assert response.headers["x-request-id"]
    assert catalog_ready.audit.tree_state() == before  # not even an auth.reject entry


def test_a_streamed_body_without_a_length_is_cut_off_at_the_cap(
    gateway_url: str, catalog_ready: Services
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "'
        for _ in range(64):
            yield b"x" * 4096

    response = httpx.post(
        f"{gateway_url}/v1/exemptions",
        content=chunks(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {mint(catalog_ready, subject='root', roles=(Role.ADMIN,))}",
        },
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["detail"] == f"request bodies are limited to {MAX_BODY_BYTES:,} bytes"


def test_integers_beyond_64_bits_are_malformed_input_not_a_database_outage(
    gateway_url: str, catalog_ready: Services
) -> None:
    huge = 2**64
    admin = {"Authorization": f"Bearer {mint(catalog_ready, subject='root', roles=(Role.ADMIN,))}"}
    quota = httpx.put(
        f"{gateway_url}/v1/quotas/org/rhein", json={"bytes_per_day": huge}, headers=admin
    )
    assert quota.status_code == 422, quota.text
    for path in (
        f"/v1/audit/entries?after={huge}",
        f"/v1/audit/proofs/inclusion?index={huge}",
        f"/v1/audit/proofs/consistency?from=1&to={huge}",
        f"/v1/audit/receipts/{huge}",
    ):
        response = httpx.get(f"{gateway_url}{path}", headers=admin)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_an_unauthenticated_sender_is_refused_before_its_body_is_read(
    gateway_url: str, catalog_ready: Services
) -> None:
    # The body is announced and never sent: a gateway that read bodies before
    # checking who sends them would sit waiting for it.
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /v1/grants HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\nContent-Length: 16000\r\n"
            b"Authorization: Bearer forged.token.here\r\n\r\n"
        )
        answer = connection.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 401"), answer
    assert "application/problem+json" in answer
    [refusal] = catalog_ready.audit.query(event="auth.reject")
    assert refusal.as_dict()["path"] == "/v1/grants"
