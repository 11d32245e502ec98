"""The grant path over real HTTP: identity -> policy -> durable audit -> keys and URLs."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import func, select, text

from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.crypto.fileformat import HEADER_SIZE
from gateway.crypto.keyrelease import grant_info, open_key
from gateway.identity.principal import Role
from gateway.service import new_grant_id
from gateway.state.tables import AuditEntry, Grant
from tests.conftest import MODEL, REVISION, mint


@pytest.fixture
def http(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, timeout=10) as client:
        yield client


def _recipient() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    return key, base64.b64encode(key.public_key().public_bytes_raw()).decode()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ask(http: httpx.Client, token: str, **body: Any) -> httpx.Response:
    if "recipient_key" not in body:
        body["recipient_key"] = _recipient()[1]
    return http.post("/v1/grants", json={"model": MODEL, **body}, headers=_auth(token))


def _counts(services: Services) -> tuple[int, int]:
    with services.sessions() as session:
        entries = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
        grants = session.scalar(select(func.count()).select_from(Grant)) or 0
    return entries, grants


def _entry(services: Services, index: int) -> dict[str, Any]:
    [row] = services.audit.query(after=index - 1, limit=1)
    assert row.index == index
    return row.as_dict()


def test_tier1_requester_gets_keys_that_only_their_private_key_opens(
    http: httpx.Client, catalog_ready: Services
) -> None:
    private, public = _recipient()
    response = _ask(http, mint(catalog_ready), recipient_key=public)
    assert response.status_code == 201, response.text
    grant = response.json()
    assert grant["revision"] == REVISION
    assert grant["decision"]["effect"] == "allow"
    assert grant["decision"]["tier"] == 1
    expires = datetime.fromisoformat(grant["expires_at"])
    assert expires - catalog_ready.clock.now() == timedelta(minutes=15)
    assert {f["path"] for f in grant["files"]} == {
        "config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    for item in grant["files"]:
        info = grant_info(
            grant_id=grant["id"],
            subject="anna",
            model=MODEL,
            revision=REVISION,
            path=item["path"],
            expires_at=expires,
        )
        assert len(open_key(base64.b64decode(item["wrapped_key"]), private, info)) == 32
        assert len(base64.b64decode(item["header"])) == HEADER_SIZE
    entry = _entry(catalog_ready, grant["audit_index"])
    assert entry["event"] == "grant.allow"
    assert entry["grant_id"] == grant["id"]
    assert entry["actor"]["token"].startswith("hmac-sha256:")


@pytest.mark.parametrize(
    ("org", "country", "tier", "code"),
    [
        ("deccan", "IN", 2, "TIER_NOT_ALLOWED"),
        ("rhein", "CN", 3, "TIER3_BY_LOCATION"),
        ("panda-de", "DE", 3, "TIER3_BY_PARENT_HQ"),
        ("unregistered", "DE", 1, "ORG_UNREGISTERED"),
    ],
    ids=[
        "tier2-location",
        "tier3-location",
        "tier3-parent-behind-tier1-subsidiary",
        "unregistered-org",
    ],
)
def test_denied_requester_gets_reasons_and_nothing_else(
    http: httpx.Client, catalog_ready: Services, org: str, country: str, tier: int, code: str
) -> None:
    _, grants_before = _counts(catalog_ready)
    response = _ask(http, mint(catalog_ready, subject="x", org=org, country=country))
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["tier"] == tier
    assert code in {reason["code"] for reason in body["reasons"]}
    assert all(reason["citation"] for reason in body["reasons"])
    assert "files" not in body and "wrapped_key" not in response.text
    assert _entry(catalog_ready, body["audit_index"])["event"] == "grant.deny"
    assert _counts(catalog_ready)[1] == grants_before


def test_nothing_is_granted_when_the_audit_log_cannot_be_written(
    http: httpx.Client, catalog_ready: Services
) -> None:
    with catalog_ready.engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries "
                "BEGIN SELECT RAISE(ABORT, 'audit store unavailable'); END"
            )
        )
    before = _counts(catalog_ready)
    response = _ask(http, mint(catalog_ready))
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "wrapped_key" not in response.text and "url" not in response.json()
    assert _counts(catalog_ready) == before


def test_nothing_is_granted_or_logged_as_allowed_when_the_keystore_is_gone(
    http: httpx.Client, catalog_ready: Services
) -> None:
    for kek in (catalog_ready.settings.keys_dir / "kek").glob("*.key"):
        kek.unlink()
    before = _counts(catalog_ready)
    response = _ask(http, mint(catalog_ready))
    assert response.status_code == 503
    assert _counts(catalog_ready) == before
    assert http.get("/readyz").status_code == 503


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL},
        {"model": MODEL, "recipient_key": "not base64!"},
        {"model": MODEL, "recipient_key": base64.b64encode(b"short").decode()},
        {"model": MODEL, "recipient_key": "AAAA", "surprise": True},
        {"model": "../../etc/passwd", "recipient_key": base64.b64encode(bytes(32)).decode()},
        {
            "model": MODEL,
            "revision": "r1;drop",
            "recipient_key": base64.b64encode(bytes(32)).decode(),
        },
        {
            "model": MODEL,
            "files": ["../secret"],
            "recipient_key": base64.b64encode(bytes(32)).decode(),
        },
        {"model": 7, "recipient_key": 7},
        [],
    ],
    ids=[
        "no-recipient",
        "recipient-not-base64",
        "recipient-wrong-length",
        "unknown-field",
        "model-path-traversal",
        "revision-injection",
        "file-path-traversal",
        "wrong-types",
        "not-an-object",
    ],
)
def test_malformed_grant_request_is_422_and_changes_nothing(
    http: httpx.Client, catalog_ready: Services, body: Any
) -> None:
    before = _counts(catalog_ready)
    response = http.post("/v1/grants", json=body, headers=_auth(mint(catalog_ready)))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 422
    assert _counts(catalog_ready) == before


def test_body_that_is_not_json_is_422(http: httpx.Client, catalog_ready: Services) -> None:
    response = http.post(
        "/v1/grants",
        content=b"{nope",
        headers={**_auth(mint(catalog_ready)), "Content-Type": "application/json"},
    )
    assert response.status_code == 422


def test_unknown_model_and_revision_are_404(http: httpx.Client, catalog_ready: Services) -> None:
    token = mint(catalog_ready)
    assert _ask(http, token, model="acme/nothing").status_code == 404
    assert _ask(http, token, revision="r9").status_code == 404
    assert _ask(http, token, files=["missing.bin"]).status_code == 404


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic YTpi"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer not.a.jwt"},
    ],
    ids=["missing", "wrong-scheme", "empty-bearer", "garbage-token"],
)
def test_request_without_a_trusted_token_is_401(
    http: httpx.Client, catalog_ready: Services, headers: dict[str, str]
) -> None:
    before = _counts(catalog_ready)
    response = http.post("/v1/grants", json={"model": MODEL, "recipient_key": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"] == "application/problem+json"
    entries, grants = _counts(catalog_ready)
    assert (entries, grants) == (before[0] + 1, before[1])
    [rejection] = catalog_ready.audit.query(event="auth.reject")
    logged = rejection.as_dict()
    assert logged["reason"] == response.json()["detail"]
    assert logged["path"] == "/v1/grants"
    secret = headers.get("Authorization", "").partition(" ")[2]
    assert not secret or secret not in rejection.entry.decode()


def _grant(http: httpx.Client, services: Services) -> dict[str, Any]:
    response = _ask(http, mint(services))
    assert response.status_code == 201
    grant: dict[str, Any] = response.json()
    return grant


def test_file_url_redirects_to_a_short_lived_storage_url_with_ranges(
    http: httpx.Client, catalog_ready: Services
) -> None:
    grant = _grant(http, catalog_ready)
    item = grant["files"][0]
    redirect = http.get(item["url"])
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    expires = int(httpx.URL(location).params["exp"])
    assert expires - catalog_ready.clock.now().timestamp() <= 60
    ranged = http.get(location, headers={"Range": "bytes=0-55"})
    assert ranged.status_code == 206
    assert ranged.content == base64.b64decode(item["header"])
    full = http.get(location)
    assert len(full.content) == item["ciphertext_size"]
    events = [r.as_dict()["event"] for r in catalog_ready.audit.query(event="download.redirect")]
    assert events == ["download.redirect"]


def test_storage_url_dies_after_60_seconds(
    http: httpx.Client, catalog_ready: Services, clock: FixedClock
) -> None:
    location = http.get(_grant(http, catalog_ready)["files"][0]["url"]).headers["location"]
    clock.advance(timedelta(seconds=61))
    assert http.get(location).status_code == 410


def test_forged_storage_url_is_refused(http: httpx.Client, catalog_ready: Services) -> None:
    location = http.get(_grant(http, catalog_ready)["files"][0]["url"]).headers["location"]
    url = httpx.URL(location)
    extended = url.copy_set_param("exp", str(int(url.params["exp"]) + 3600))
    assert http.get(extended).status_code == 403


def test_file_url_replayed_after_revocation_is_410(
    http: httpx.Client, catalog_ready: Services
) -> None:
    grant = _grant(http, catalog_ready)
    revoked = http.delete(f"/v1/grants/{grant['id']}", headers=_auth(mint(catalog_ready)))
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert http.get(grant["files"][0]["url"]).status_code == 410


def test_file_url_after_grant_expiry_is_410(
    http: httpx.Client, catalog_ready: Services, clock: FixedClock
) -> None:
    grant = _grant(http, catalog_ready)
    clock.advance(timedelta(minutes=15))
    assert http.get(grant["files"][0]["url"]).status_code == 410


def test_file_url_for_another_path_with_a_borrowed_capability_is_refused(
    http: httpx.Client, catalog_ready: Services
) -> None:
    first, second = _grant(http, catalog_ready)["files"][:2]
    cap = httpx.URL(first["url"]).params["cap"]
    borrowed = httpx.URL(second["url"]).copy_set_param("cap", cap)
    assert http.get(borrowed).status_code == 403


def test_someone_elses_grant_is_invisible_and_unrevocable(
    http: httpx.Client, catalog_ready: Services
) -> None:
    grant = _grant(http, catalog_ready)
    stranger = _auth(mint(catalog_ready, subject="mallory"))
    assert http.get(f"/v1/grants/{grant['id']}", headers=stranger).status_code == 404
    assert http.delete(f"/v1/grants/{grant['id']}", headers=stranger).status_code == 404
    owner = http.get(f"/v1/grants/{grant['id']}", headers=_auth(mint(catalog_ready)))
    assert owner.json()["state"] == "active"


def test_audit_entries_need_the_security_role(http: httpx.Client, catalog_ready: Services) -> None:
    _grant(http, catalog_ready)
    denied = http.get("/v1/audit/entries", headers=_auth(mint(catalog_ready)))
    assert denied.status_code == 403
    assert "security" in denied.json()["detail"]
    reader = _auth(mint(catalog_ready, subject="sec", roles=(Role.SECURITY,)))
    page = http.get("/v1/audit/entries", params={"event": "grant.allow"}, headers=reader).json()
    assert [e["event"] for e in page["entries"]] == ["grant.allow"]
    assert len(page["entries"][0]["leaf_hash"]) == 64


def test_policy_explain_endpoint_uses_the_shared_decision_shape(
    http: httpx.Client, catalog_ready: Services
) -> None:
    response = http.post(
        "/v1/policy/explain",
        json={"country": "DE", "org_hq": "MO"},
        headers=_auth(mint(catalog_ready)),
    )
    body = response.json()
    assert (body["effect"], body["tier"], body["policy"]) == ("deny", 3, "ai-diffusion-2025")
    bad = http.post(
        "/v1/policy/explain", json={"country": "XX"}, headers=_auth(mint(catalog_ready))
    )
    assert bad.status_code == 422


def test_health_readiness_and_catalog(http: httpx.Client, catalog_ready: Services) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = {"database": "ok", "storage": "ok", "keys": "ok", "audit": "ok", "checkpoints": "ok"}
    assert http.get("/readyz").json() == ready
    models = http.get("/v1/models", headers=_auth(mint(catalog_ready))).json()["models"]
    assert models == [
        {
            "id": MODEL,
            "eccn": "4E091",
            "classification_basis": "declared 4E091 by the operator; training operations not "
            "recorded",
            "training_ops": None,
            "revisions": [REVISION],
        }
    ]
    # Appends sign nothing: until a publication round there is no checkpoint to serve.
    assert http.get("/v1/audit/checkpoint").status_code == 404
    published = catalog_ready.publisher.publish()
    assert published is not None
    served = http.get("/v1/audit/checkpoint").text
    assert served == published.note
    assert served.startswith("weightgate.local/audit\n")
    # This process now holds the publisher role, and readiness says so.
    assert http.get("/readyz").json() == {**ready, "checkpoints": "publishing"}
    assert "python_info" in http.get("/metrics").text


def test_grant_ids_can_be_typed_on_a_command_line() -> None:
    """An id beginning with "-" (one in 64 of URL-safe base64 ids) reads as an option."""
    ids = {new_grant_id() for _ in range(1_000)}
    assert len(ids) == 1_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", grant_id) for grant_id in ids)
