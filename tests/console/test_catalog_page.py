"""The models and organisations page: catalog, screening status, and grants an admin revokes."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import delete

from gateway.bootstrap import Services
from gateway.catalog import Catalog
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.errors import InvalidInput
from gateway.identity.principal import Principal, Role
from gateway.policy.pack import Eccn
from gateway.service import GrantRequest
from gateway.state.tables import ScreeningResult
from tests.conftest import MODEL, REVISION, mint, operator
from tests.console.conftest import ConsoleBrowser, console_token

FIXTURES = Path(__file__).parent.parent / "fixtures"
RECIPIENT = base64.b64encode(bytes(range(1, 33))).decode()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared gateway, screening against the synthetic denied-party list."""
    return settings.model_copy(update={"screening_list": FIXTURES / "csl-synthetic.csv"})


def _register_listed_party(catalog: Catalog) -> None:
    # Registered under a name of its own; its alias is on the list (SYN-EL-0001).
    catalog.add_org(
        "northwind-de",
        name="Nordwind Rechenzentrum GmbH",
        hq="DE",
        parent_hq=None,
        aliases=("Northwind QCRI",),
        context=operator(),
    )


def _grant(url: str, services: Services) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/v1/grants",
        json={"model": MODEL, "recipient_key": RECIPIENT},
        headers={"Authorization": f"Bearer {mint(services, subject='anna')}"},
    )
    assert response.status_code == 201, response.text
    granted: dict[str, Any] = response.json()
    return granted


def test_a_security_reviewer_sees_the_catalog_screening_and_grants_but_no_revoke(
    console: ConsoleBrowser, gateway_url: str, catalog_ready: Services
) -> None:
    _register_listed_party(catalog_ready.catalog)
    # One organisation whose stored result is gone: shown as not screened, not as clear.
    with catalog_ready.sessions.begin() as session:
        session.execute(delete(ScreeningResult).where(ScreeningResult.org_id == "deccan"))
    granted = _grant(gateway_url, catalog_ready)
    page = console.sign_in(
        console_token(catalog_ready, "sam", Role.SECURITY), then="/console/catalog"
    )
    expect(page.locator("h1")).to_have_text("Models and organisations")
    model = page.locator(f"tr[data-model='{MODEL}']")
    expect(model).to_contain_text("4E091")
    expect(model).to_contain_text(f"{REVISION}: 3 files")
    in_force = catalog_ready.screening.current
    assert in_force is not None
    sha = in_force.sha256
    expect(page.locator("main")).to_contain_text(sha[:12])
    listed = page.locator("tr[data-org='northwind-de'] td.screening")
    expect(listed).to_contain_text("1 hit")
    expect(listed).to_contain_text("“Northwind QCRI” matches Northwind QCRI (score 100")
    expect(listed).to_contain_text("SYN-EL-0001")
    expect(listed).to_contain_text(f"list {sha[:12]}")
    expect(page.locator("tr[data-org='rhein'] td.screening")).to_contain_text("clear")
    expect(page.locator("tr[data-org='deccan'] td.screening")).to_contain_text("not screened")
    expect(page.locator("tr[data-org='panda-de']")).to_contain_text("CN")
    row = page.locator(f"tr[data-grant='{granted['id']}']")
    expect(row.locator("td.state")).to_have_text("active")
    expect(row).to_contain_text(f"{MODEL}@{REVISION}")
    expect(row.locator("button")).to_have_count(0)  # revoking another's grant is admin-only
    console.screenshot("reviewer")
    # The exemptions queue is admin-only, as GET /v1/exemptions is.
    refused = page.goto(console.base_url + "/console/exemptions")
    assert refused is not None and refused.status == 403
    console.screenshot("exemptions-refused")
    # And a revoke posted by hand, with the right CSRF token, is refused and changes nothing.
    page.goto(console.base_url + "/console/catalog")
    csrf = page.locator("header input[name=csrf]").get_attribute("value")
    forged = httpx.post(
        f"{console.base_url}/console/catalog/grants/{granted['id']}/revoke",
        data={"csrf": str(csrf)},
        cookies={c["name"]: c["value"] for c in page.context.cookies()},
        follow_redirects=False,
    )
    assert forged.status_code == 403
    assert catalog_ready.audit.query(event="grant.revoke") == []


def test_an_admin_revokes_a_grant_and_its_file_urls_answer_410(
    console: ConsoleBrowser, gateway_url: str, catalog_ready: Services
) -> None:
    granted = _grant(gateway_url, catalog_ready)
    file_url = granted["files"][0]["url"]
    assert httpx.get(file_url).status_code in (200, 302, 307)
    page = console.sign_in(console_token(catalog_ready, "ada", Role.ADMIN), then="/console/catalog")
    row = page.locator(f"tr[data-grant='{granted['id']}']")
    console.screenshot("before-revoke")
    with page.expect_navigation():
        row.locator("button", has_text="Revoke").click()
    expect(page.locator("[role=status]")).to_contain_text("Grant revoked")
    expect(row.locator("td.state")).to_have_text("revoked")
    expect(row.locator("button")).to_have_count(0)
    console.screenshot("revoked")
    assert httpx.get(file_url).status_code == 410
    [entry] = catalog_ready.audit.query(event="grant.revoke")
    recorded = entry.as_dict()
    assert recorded["actor"]["subject"] == "ada"
    assert recorded["grant_id"] == granted["id"]
    bad = httpx.get(f"{console.base_url}/console/catalog?limit=100000", cookies=_cookies(page))
    assert bad.status_code == 422


def _cookies(page: Page) -> dict[str, str]:
    return {c["name"]: c["value"] for c in page.context.cookies()}


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_recent_grants_are_newest_first_bounded_and_name_their_state(
    database: str, request: pytest.FixtureRequest, clock: FixedClock, model_dir: Path
) -> None:
    services: Services = request.getfixturevalue(
        "services" if database == "sqlite" else "pg_services"
    )
    services.catalog.add_org("rhein", name="Rhein", hq="DE", parent_hq=None, context=operator())
    services.catalog.publish(
        model_dir,
        model_id=MODEL,
        revision=REVISION,
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    anna = Principal("anna", "rhein", "DE", frozenset({Role.ML}), None, "weightgate-dev")
    ids = []
    for _ in range(3):
        issued = services.grants.request_grant(
            anna, GrantRequest(MODEL, None, None, RECIPIENT), operator()
        )
        ids.append(issued.body["id"])
        clock.advance(timedelta(minutes=10))
    services.grants.revoke(anna, ids[1], operator())
    recent = services.grants.recent(2)
    assert [g["id"] for g in recent] == [ids[2], ids[1]]
    assert [g["state"] for g in recent] == ["active", "revoked"]
    assert recent[0]["org"] == "rhein" and recent[0]["model"] == MODEL
    assert recent[0]["files"] == 3 and recent[0]["exemption_id"] is None
    # The first, issued 30 minutes ago with a 15-minute lifetime, has expired.
    assert services.grants.recent(3)[2]["state"] == "expired"
    for limit in (0, 501):
        with pytest.raises(InvalidInput):
            services.grants.recent(limit)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_stored_screening_results_are_read_for_the_page(
    database: str, request: pytest.FixtureRequest
) -> None:
    services: Services = request.getfixturevalue(
        "services" if database == "sqlite" else "pg_services"
    )
    services.catalog.add_org("rhein", name="Rhein", hq="DE", parent_hq=None, context=operator())
    _register_listed_party(services.catalog)
    stored = services.screening.stored_results(["rhein", "northwind-de", "rhein", "nobody"])
    assert sorted(stored) == ["northwind-de", "rhein"]
    assert stored["rhein"].hits == ()
    assert [hit.entry_id for hit in stored["northwind-de"].hits] == ["SYN-EL-0001"]
    assert all(services.screening.is_current(result) for result in stored.values())
    assert services.screening.stored_results([]) == {}
