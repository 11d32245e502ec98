"""Names an admin types end up in terminals and logs: control characters are refused, not stored."""

from __future__ import annotations

import httpx
import pytest

from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import mint


def _admin(services: Services) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(services, subject='root', roles=(Role.ADMIN,))}"}


@pytest.mark.parametrize(
    ("name", "aliases"),
    [
        ("Rhein AI\x1b[2J\x1b[H", []),  # clears a reviewer's terminal
        ("Rhein AI\nPanda Labs", []),  # a second line posing as another organisation
        ("Rhein AI", ["Rhein\u202eIA"]),  # right-to-left override reverses what is shown
        ("Rhein AI", ["\u0000"]),
    ],
    ids=["terminal-escape", "newline", "bidi-override", "nul"],
)
def test_organisation_names_and_aliases_with_control_characters_are_refused(
    gateway_url: str, catalog_ready: Services, name: str, aliases: list[str]
) -> None:
    before = catalog_ready.audit.tree_state()
    response = httpx.post(
        f"{gateway_url}/v1/orgs",
        json={"id": "mallory", "name": name, "hq": "DE", "aliases": aliases},
        headers=_admin(catalog_ready),
    )
    assert response.status_code == 422, response.text
    assert catalog_ready.catalog.org("mallory") is None
    assert catalog_ready.audit.tree_state() == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1/quotas/subject/anna%0Aroot",
        "/v1/quotas/subject/anna%1B%5B2J",
        "/v1/quotas/org/rhein%20ai",
    ],
    ids=["newline-in-subject", "escape-in-subject", "org-that-is-no-org-id"],
)
def test_quota_keys_that_no_token_could_claim_are_refused(
    gateway_url: str, catalog_ready: Services, path: str
) -> None:
    response = httpx.put(
        f"{gateway_url}{path}", json={"grants_per_hour": 1}, headers=_admin(catalog_ready)
    )
    assert response.status_code == 422, response.text
    assert catalog_ready.audit.query(event="quota.set") == []
