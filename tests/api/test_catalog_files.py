"""``GET /v1/models/{model}/revisions/{revision}/files``: what a grant would cover, before one.

A client lists a revision's files to check its disk before it asks for a
grant. The listing is catalog data, so any authenticated caller sees it,
including one the policy denies: it therefore carries names and sizes, never
the plaintext SHA-256 that would let a denied party confirm a leaked copy.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from gateway.bootstrap import Services
from tests.conftest import MODEL, REVISION, mint

FILES = f"/v1/models/{MODEL}/revisions/{REVISION}/files"


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        yield client


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_listing_names_every_file_with_both_sizes_and_no_hash(
    http: httpx.Client, catalog_ready: Services
) -> None:
    before = catalog_ready.audit.tree_state()
    response = http.get(FILES, headers=_auth(mint(catalog_ready)))
    assert response.status_code == 200, response.text
    body = response.json()
    expected = [
        {"path": f.path, "size": f.plaintext_size, "ciphertext_size": f.ciphertext_size}
        for f in catalog_ready.catalog.files(MODEL, REVISION)
    ]
    assert body == {"model": MODEL, "revision": REVISION, "files": expected}
    assert [f["path"] for f in body["files"]] == sorted(f["path"] for f in body["files"])
    assert "sha256" not in response.text, "no hash to confirm a leaked copy with"
    assert catalog_ready.audit.tree_state() == before, "a listing is no grant: nothing audited"


def test_a_party_the_policy_denies_sees_the_listing_as_it_sees_the_catalog(
    http: httpx.Client, catalog_ready: Services
) -> None:
    token = mint(catalog_ready, subject="li", org="panda-de", country="CN")
    assert http.get("/v1/models", headers=_auth(token)).status_code == 200
    response = http.get(FILES, headers=_auth(token))
    assert response.status_code == 200
    assert all(set(f) == {"path", "size", "ciphertext_size"} for f in response.json()["files"])


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/acme/no-such-model/revisions/{REVISION}/files",
        f"/v1/models/{MODEL}/revisions/r999/files",
        f"/v1/models/frontier-1/revisions/{REVISION}/files",
    ],
    ids=["unknown-model", "unknown-revision", "model-without-its-org"],
)
def test_unknown_model_or_revision_is_404_problem(
    http: httpx.Client, catalog_ready: Services, path: str
) -> None:
    response = http.get(path, headers=_auth(mint(catalog_ready)))
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not_found"


def test_listing_without_a_token_is_401(http: httpx.Client, catalog_ready: Services) -> None:
    response = http.get(FILES)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    forged = http.get(FILES, headers=_auth(mint(catalog_ready) + "x"))
    assert forged.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/../revisions/{REVISION}/files",
        f"/v1/models/acme/%2e%2e/revisions/{REVISION}/files",
        f"/v1/models/acme/x/y/revisions/{REVISION}/files",
        f"/v1/models/{MODEL}/revisions/{REVISION}/revisions/{REVISION}/files",
        f"/v1/models/{MODEL}%00/revisions/{REVISION}/files",
        f"/v1/models/acme/%1B%5B2J/revisions/{REVISION}/files",
        f"/v1/models/{MODEL}/revisions/r1%0Aroot/files",
        f"/v1/models/{MODEL}/revisions/..%2F..%2Fetc/files",
        f"/v1/models/{'a' * 5000}/revisions/{REVISION}/files",
        f"/v1/models/{MODEL}/revisions/{'r' * 5000}/files",
        f"/v1/models//revisions/{REVISION}/files",
    ],
    ids=[
        "dot-dot-model",
        "encoded-dot-dot",
        "three-part-model",
        "revision-smuggled-into-the-model",
        "nul",
        "terminal-escape",
        "newline-in-revision",
        "encoded-slashes-in-revision",
        "huge-model",
        "huge-revision",
        "empty-model",
    ],
)
def test_hostile_ids_are_refused_as_invalid_input(
    http: httpx.Client, catalog_ready: Services, path: str
) -> None:
    response = http.get(path, headers=_auth(mint(catalog_ready)))
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "\x1b" not in response.text and "\n" not in response.json()["detail"]


@pytest.mark.usefixtures("catalog_ready")
def test_listing_is_in_the_openapi_document(http: httpx.Client) -> None:
    document = http.get("/openapi.json").json()
    operation = document["paths"]["/v1/models/{model}/revisions/{revision}/files"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/RevisionFiles"}
    entry = document["components"]["schemas"]["ListedFile"]
    assert set(entry["properties"]) == {"path", "size", "ciphertext_size"}
    assert {"401", "404", "422"} <= set(operation["responses"])
