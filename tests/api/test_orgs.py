"""Organisations over the API: admins register and change them, and every change is audited."""

from __future__ import annotations

import base64

import httpx

from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import MODEL, mint

RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


def _as(services: Services, role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(services, subject='root', roles=(role,))}"}


def test_headquarters_moved_to_a_tier3_parent_shuts_the_door_at_once(
    gateway_url: str, catalog_ready: Services
) -> None:
    token = {"Authorization": f"Bearer {mint(catalog_ready)}"}
    body = {"model": MODEL, "recipient_key": RECIPIENT}
    assert httpx.post(f"{gateway_url}/v1/grants", json=body, headers=token).status_code == 201
    changed = httpx.patch(
        f"{gateway_url}/v1/orgs/rhein",
        json={"parent_hq": "CN"},
        headers=_as(catalog_ready, Role.ADMIN),
    )
    assert changed.status_code == 200 and changed.json()["parent_hq"] == "CN"
    denied = httpx.post(f"{gateway_url}/v1/grants", json=body, headers=token)
    assert denied.status_code == 403 and denied.json()["tier"] == 3
    [update] = catalog_ready.audit.query(event="org.update")
    entry = update.as_dict()
    assert entry["org"]["before"]["parent_hq"] is None
    assert entry["org"]["after"]["parent_hq"] == "CN"
    assert entry["actor"]["subject"] == "root"
    cleared = httpx.patch(
        f"{gateway_url}/v1/orgs/rhein",
        json={"parent_hq": None},
        headers=_as(catalog_ready, Role.ADMIN),
    )
    assert cleared.json()["parent_hq"] is None


def test_registering_organisations_needs_an_admin_and_good_input(
    gateway_url: str, catalog_ready: Services
) -> None:
    body = {"id": "fjord", "name": "Fjord AI AS", "hq": "NO", "aliases": ["Fjord"]}
    assert (
        httpx.post(
            f"{gateway_url}/v1/orgs", json=body, headers=_as(catalog_ready, Role.ML)
        ).status_code
        == 403
    )
    created = httpx.post(
        f"{gateway_url}/v1/orgs", json=body, headers=_as(catalog_ready, Role.ADMIN)
    )
    assert created.status_code == 201 and created.json()["aliases"] == ["Fjord"]
    again = httpx.post(f"{gateway_url}/v1/orgs", json=body, headers=_as(catalog_ready, Role.ADMIN))
    assert again.status_code == 409
    bad = httpx.post(
        f"{gateway_url}/v1/orgs",
        json={**body, "id": "x", "hq": "ZZ"},
        headers=_as(catalog_ready, Role.ADMIN),
    )
    assert bad.status_code == 422
    assert (
        httpx.patch(
            f"{gateway_url}/v1/orgs/nobody",
            json={"hq": "DE"},
            headers=_as(catalog_ready, Role.ADMIN),
        ).status_code
        == 404
    )
    listed = httpx.get(f"{gateway_url}/v1/orgs", headers=_as(catalog_ready, Role.SECURITY))
    assert "fjord" in {org["id"] for org in listed.json()["orgs"]}
    [added] = [
        e for e in catalog_ready.audit.query(event="org.add") if e.as_dict()["org"]["id"] == "fjord"
    ]
    assert added.as_dict()["actor"]["subject"] == "root"
