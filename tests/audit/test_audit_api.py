"""The audit API as an outside verifier uses it: exact entry bytes, and proof requests that
cannot be mistaken for tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.audit.support import append_and_publish, decision_event
from tests.conftest import mint


@pytest.fixture
def api(services: Services) -> Iterator[httpx.Client]:
    for number in range(5):
        append_and_publish(services, [decision_event(services, number)])
    port = int(services.settings.url.rsplit(":", 1)[1])
    with (
        serving(create_app(services), "127.0.0.1", port) as url,
        httpx.Client(base_url=url) as client,
    ):
        yield client


def _as(services: Services, *roles: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(services, subject='sec', roles=roles)}"}


def test_raw_entry_is_the_exact_hashed_bytes(services: Services, api: httpx.Client) -> None:
    answer = api.get("/v1/audit/entries/3/raw", headers=_as(services, Role.SECURITY))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    [stored] = services.audit.query(after=2, limit=1)
    assert answer.content == stored.entry
    # A verifier hashes what it received, without re-canonicalising anything.
    assert hashlib.sha256(b"\0" + answer.content).digest() == stored.leaf_hash
    listed = api.get(
        "/v1/audit/entries", params={"after": 2, "limit": 1}, headers=_as(services, Role.ADMIN)
    ).json()["entries"][0]
    assert listed["leaf_hash"] == stored.leaf_hash.hex()


def test_raw_entry_needs_the_roles_the_entry_list_needs(
    services: Services, api: httpx.Client
) -> None:
    assert api.get("/v1/audit/entries/0/raw").status_code == 401
    ml = _as(services, Role.ML)
    assert api.get("/v1/audit/entries/0/raw", headers=ml).status_code == 403
    assert api.get("/v1/audit/entries", headers=ml).status_code == 403
    assert api.get("/v1/audit/entries/0/raw", headers=_as(services, Role.ADMIN)).status_code == 200


def test_raw_entry_past_the_end_or_malformed_is_a_clear_4xx(
    services: Services, api: httpx.Client
) -> None:
    reader = _as(services, Role.SECURITY)
    missing = api.get("/v1/audit/entries/5/raw", headers=reader)
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    for bad in ("-1", "x", str(2**63)):
        assert api.get(f"/v1/audit/entries/{bad}/raw", headers=reader).status_code == 422


def test_consistency_from_the_empty_tree_is_refused_as_the_reference_logs_do(
    api: httpx.Client,
) -> None:
    answer = api.get("/v1/audit/proofs/consistency", params={"from": 0, "to": 3})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_input"
    assert "from" in answer.json()["detail"]


def test_consistency_past_the_end_is_not_found_not_a_missing_node(api: httpx.Client) -> None:
    # A tree the log has not reached yet: the answer must not read as tampering.
    answer = api.get("/v1/audit/proofs/consistency", params={"from": 2, "to": 9})
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "not_found"
    assert "5" in answer.json()["detail"]
    assert "lacks" not in answer.text and "integrity" not in answer.text
    reversed_sizes = api.get("/v1/audit/proofs/consistency", params={"from": 4, "to": 2})
    assert reversed_sizes.status_code == 422
    same = api.get("/v1/audit/proofs/consistency", params={"from": 5, "to": 5})
    assert (same.status_code, same.json()["proof"]) == (200, [])


def test_inclusion_past_the_end_is_a_plain_4xx_not_tampering(api: httpx.Client) -> None:
    beyond = api.get("/v1/audit/proofs/inclusion", params={"index": 5})
    assert (beyond.status_code, beyond.json()["code"]) == (422, "invalid_input")
    unsigned = api.get("/v1/audit/proofs/inclusion", params={"index": 1, "size": 9})
    assert (unsigned.status_code, unsigned.json()["code"]) == (404, "not_found")
