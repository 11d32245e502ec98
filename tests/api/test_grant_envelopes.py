"""Envelope negotiation over real HTTP: v2 for clients that announce it, v1 for everyone else."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from gateway.bootstrap import Services
from gateway.client.grant_session import open_grant
from gateway.crypto.envelope import GrantBinding, GrantOpener
from gateway.crypto.keyrelease import HYBRID, X25519, ClientKeyPair, grant_info, open_key
from tests.conftest import MODEL, REVISION, mint


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        yield client


def _ask(
    http: httpx.Client, services: Services, keys: ClientKeyPair, **extra: Any
) -> httpx.Response:
    body = {
        "model": MODEL,
        "recipient_key": keys.recipient_key(),
        "recipient_kem": keys.kem,
        **extra,
    }
    return http.post("/v1/grants", json=body, headers={"Authorization": f"Bearer {mint(services)}"})


def _file_keys(grant: dict[str, Any], keys: ClientKeyPair) -> dict[str, bytes]:
    # The client's own opening checks each key against its file's commitment.
    assert len(open_grant(grant, keys.private)) == len(grant["files"])
    binding = GrantBinding(
        grant["id"],
        grant["subject"],
        grant["model"],
        grant["revision"],
        datetime.fromisoformat(grant["expires_at"]),
    )
    sealed = grant["grant_key"] and base64.b64decode(grant["grant_key"])
    opener = GrantOpener(grant["envelope"], keys.private, binding, sealed or None)
    return {
        f["path"]: opener.open_file_key(
            base64.b64decode(f["wrapped_key"]), f["path"], f["file_version"]
        )
        for f in grant["files"]
    }


def test_client_that_announces_nothing_still_gets_v1_exactly_as_before(
    http: httpx.Client, catalog_ready: Services
) -> None:
    keys = ClientKeyPair.generate()
    response = _ask(http, catalog_ready, keys)
    assert response.status_code == 201, response.text
    grant = response.json()
    assert grant["envelope"] == "v1"
    assert grant["grant_key"] is None
    for item in grant["files"]:
        info = grant_info(
            grant_id=grant["id"],
            subject="anna",
            model=MODEL,
            revision=REVISION,
            path=item["path"],
            expires_at=datetime.fromisoformat(grant["expires_at"]),
        )
        wrapped = base64.b64decode(item["wrapped_key"])
        assert len(wrapped) == 80
        assert len(open_key(wrapped, keys.private, info)) == 32


@pytest.mark.parametrize("kem", [X25519, HYBRID])
def test_v2_grant_opens_to_the_same_file_keys_as_v1(
    http: httpx.Client, catalog_ready: Services, kem: str
) -> None:
    keys = ClientKeyPair.generate(kem)
    v2 = _ask(http, catalog_ready, keys, envelopes=["v2", "v1"]).json()
    v1 = _ask(http, catalog_ready, keys, envelopes=["v1"]).json()
    assert (v2["envelope"], v1["envelope"]) == ("v2", "v1")
    sealed = base64.b64decode(v2["grant_key"])
    assert len(sealed) == (32 if kem == X25519 else 1120) + 32 + 16
    assert all(len(base64.b64decode(f["wrapped_key"])) == 61 for f in v2["files"])
    opened = _file_keys(v2, keys)
    assert len(opened) == 3
    assert opened == _file_keys(v1, keys)


def test_client_preference_order_is_honoured(http: httpx.Client, catalog_ready: Services) -> None:
    keys = ClientKeyPair.generate()
    assert _ask(http, catalog_ready, keys, envelopes=["v1", "v2"]).json()["envelope"] == "v1"
    assert _ask(http, catalog_ready, keys, envelopes=["v2"]).json()["envelope"] == "v2"


@pytest.mark.parametrize(
    "envelopes",
    [["v3"], [], ["v2", "v1", "v2"], "v2", [2], ["V2"], ["v2\x00"], [None]],
    ids=["unknown", "empty", "too-many", "not-a-list", "number", "case", "nul", "null-entry"],
)
def test_malformed_envelope_list_is_a_422_problem(
    http: httpx.Client, catalog_ready: Services, envelopes: object
) -> None:
    response = _ask(http, catalog_ready, ClientKeyPair.generate(), envelopes=envelopes)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "wrapped_key" not in response.text


def test_null_envelope_list_is_the_fields_absence(
    http: httpx.Client, catalog_ready: Services
) -> None:
    response = _ask(http, catalog_ready, ClientKeyPair.generate(), envelopes=None)
    assert response.status_code == 201, response.text
    assert response.json()["envelope"] == "v1"
