"""The exemptions page in a real browser: the two-person rule from a queue, not from UUIDs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from gateway.audit.events import EVENTS
from gateway.bootstrap import Services
from gateway.exemptions import Proposal
from gateway.identity.principal import Principal, Role
from tests.conftest import MODEL, operator
from tests.console.conftest import ConsoleBrowser, console_token


@pytest.fixture
def second_admin(
    browser: Browser, console: ConsoleBrowser, catalog_ready: Services
) -> Iterator[ConsoleBrowser]:
    """Another browser (its own cookies), signed in as bob, a different admin."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    other = ConsoleBrowser(context.new_page(), console.base_url, console.name + "-bob")
    other.page.on("request", lambda sent: other.requested.append(sent.url))
    other.sign_in(console_token(catalog_ready, "bob", Role.ADMIN), then="/console/exemptions")
    try:
        yield other
    finally:
        context.close()
    assert other.foreign_requests() == []


def _until(services: Services) -> date:
    return services.clock.now().date() + timedelta(days=90)


def _card(page: Page, reference: str) -> str:
    """The id of the pending card for ``reference``."""
    card = page.locator("section.exemption", has_text=reference)
    expect(card).to_have_count(1)
    return str(card.get_attribute("data-exemption"))


def _session(page: Page) -> tuple[dict[str, str], str]:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    csrf = page.locator("header input[name=csrf]").get_attribute("value")
    return cookies, str(csrf)


def _actors(services: Services, event: str) -> list[str]:
    return [e.as_dict()["actor"]["subject"] for e in services.audit.query(event=event)]


def test_one_admin_proposes_another_approves_then_it_is_revoked(
    console: ConsoleBrowser, second_admin: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(
        console_token(catalog_ready, "alice", Role.ADMIN), then="/console/exemptions"
    )
    expect(page.locator("h1")).to_have_text("Exemptions")
    page.select_option("select[name=org]", "deccan")
    page.select_option("select[name=kind]", "license")
    page.fill("input[name=reference]", "D-4E091-0042")
    page.fill("input[name=countries]", "IN")
    page.fill("input[name=models]", MODEL)
    page.fill("input[name=until]", _until(catalog_ready).isoformat())
    page.fill("textarea[name=reason]", "export license granted for the Bengaluru lab")
    page.fill("textarea[name=conditions]", "no re-export")
    console.screenshot("propose-form")
    with page.expect_navigation():
        page.click("form.propose button[type=submit]")
    assert page.url.endswith("/console/exemptions?done=proposed")
    expect(page.locator("[role=status]")).to_contain_text("waits for another admin")
    exemption_id = _card(page, "D-4E091-0042")
    card = page.locator(f"section[data-exemption='{exemption_id}']")
    expect(card).to_contain_text("awaiting another admin")
    expect(card).to_contain_text("0 of 1")
    expect(card).to_contain_text("no re-export")
    expect(card).to_contain_text("alice at 2026-03-02 09:00:00 UTC")
    expect(card).to_contain_text("2026-03-09 09:00:00 UTC")  # the proposal's own expiry
    # The two-person rule, visible: no approve button for the proposer.
    expect(card.locator("button", has_text="Approve")).to_have_count(0)
    console.screenshot("proposed-awaiting")

    # Bob, in another browser, sees it with an approve button and approves.
    other = second_admin.page
    other.reload()
    bobs_card = other.locator(f"section[data-exemption='{exemption_id}']")
    second_admin.screenshot("queue")
    with other.expect_navigation():
        bobs_card.locator("button", has_text="Approve").click()
    expect(other.locator("[role=status]")).to_have_text("Approval recorded.")
    row = other.locator(f"tr[data-exemption='{exemption_id}']")
    expect(row.locator("td.status")).to_have_text("approved")
    expect(row).to_contain_text("bob")
    second_admin.screenshot("approved")

    # Alice revokes it from her own page.
    page.reload()
    with page.expect_navigation():
        page.locator(f"tr[data-exemption='{exemption_id}'] button", has_text="Revoke").click()
    expect(page.locator("[role=status]")).to_contain_text("Revoked")
    expect(page.locator(f"tr[data-exemption='{exemption_id}'] td.status")).to_have_text("revoked")
    console.screenshot("revoked")

    assert {"exemption.propose", "exemption.approve", "exemption.revoke"} <= set(EVENTS)
    assert _actors(catalog_ready, "exemption.propose") == ["alice"]
    assert _actors(catalog_ready, "exemption.approve") == ["bob"]
    assert _actors(catalog_ready, "exemption.revoke") == ["alice"]
    [proposed] = catalog_ready.audit.query(event="exemption.propose")
    assert proposed.as_dict()["exemption"]["reference"] == "D-4E091-0042"


def test_the_proposers_own_approval_forged_by_hand_is_refused_and_changes_nothing(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    alice = Principal("alice", "rhein", "DE", frozenset({Role.ADMIN}), None, "weightgate-dev")
    proposal = Proposal("deccan", "license", "D-1", ["IN"], [MODEL], _until(catalog_ready), "r")
    exemption_id = catalog_ready.exemptions.propose(alice, proposal, operator())["id"]
    page = console.sign_in(
        console_token(catalog_ready, "alice", Role.ADMIN), then="/console/exemptions"
    )
    card = page.locator(f"section[data-exemption='{exemption_id}']")
    expect(card.locator("button", has_text="Approve")).to_have_count(0)
    # The button is not there; the page is made to post one anyway, with the session's CSRF token.
    with page.expect_navigation() as navigated:
        page.evaluate(
            """id => {
                const form = document.createElement("form");
                form.method = "post";
                form.action = `/console/exemptions/${id}/approve`;
                form.appendChild(document.querySelector("input[name=csrf]").cloneNode());
                document.body.appendChild(form);
                form.submit();
            }""",
            exemption_id,
        )
    answer = navigated.value
    assert answer is not None and answer.status == 403
    expect(page.locator("[role=alert]")).to_contain_text("cannot approve it")
    [still] = catalog_ready.exemptions.list()
    assert still["status"] == "pending" and still["approvals"] == []
    assert catalog_ready.audit.query(event="exemption.approve") == []
    console.screenshot("forged-approve")


def test_an_admin_rejects_a_proposal_with_a_reason(
    second_admin: ConsoleBrowser, catalog_ready: Services
) -> None:
    alice = Principal("alice", "rhein", "DE", frozenset({Role.ADMIN}), None, "weightgate-dev")
    proposal = Proposal("deccan", "license", "D-2", ["IN"], [MODEL], _until(catalog_ready), "r")
    exemption_id = catalog_ready.exemptions.propose(alice, proposal, operator())["id"]
    page = second_admin.page
    page.reload()
    card = page.locator(f"section[data-exemption='{exemption_id}']")
    card.locator("input[name=reason]").fill("the license number does not exist")
    with page.expect_navigation():
        card.locator("button", has_text="Reject").click()
    expect(page.locator("[role=status]")).to_have_text("Rejected, with the reason recorded.")
    row = page.locator(f"tr[data-exemption='{exemption_id}']")
    expect(row.locator("td.status")).to_have_text("rejected")
    expect(row).to_contain_text("Rejected: the license number does not exist")
    second_admin.screenshot("rejected")
    [entry] = catalog_ready.audit.query(event="exemption.reject")
    recorded = entry.as_dict()
    assert recorded["actor"]["subject"] == "bob"
    assert recorded["exemption"]["decision_reason"] == "the license number does not exist"


def test_a_malformed_proposal_is_shown_back_with_why_never_a_server_error(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(
        console_token(catalog_ready, "alice", Role.ADMIN), then="/console/exemptions"
    )
    console.screenshot("empty-queue")
    cookies, csrf = _session(page)
    url = f"{console.base_url}/console/exemptions"
    form = {
        "csrf": csrf,
        "org": "deccan",
        "kind": "license",
        "reference": "D-3",
        "countries": "IN",
        "models": MODEL,
        "until": "next spring",
        "reason": "r",
    }
    shown = httpx.post(url, data=form, cookies=cookies)
    assert shown.status_code == 422
    assert "until: " in shown.text and "ISO 8601 date" in shown.text
    assert 'value="D-3"' in shown.text  # what was typed is kept
    for bad, expected in (
        ({"kind": "waiver"}, 422),
        ({"countries": "XX"}, 422),  # the service's own check
        ({"countries": ""}, 422),
        ({"models": "acme/nothing"}, 404),
        ({"until": "2020-01-01"}, 422),
    ):
        answer = httpx.post(
            url, data={**form, "until": _until(catalog_ready).isoformat(), **bad}, cookies=cookies
        )
        assert answer.status_code == expected, (bad, answer.text)
        assert "The proposal was not made" in answer.text
    no_reason = httpx.post(f"{url}/{'a' * 32}/reject", data={"csrf": csrf}, cookies=cookies)
    assert no_reason.status_code == 422
    odd_id = httpx.post(f"{url}/..%2Fx/revoke", data={"csrf": csrf}, cookies=cookies)
    assert odd_id.status_code in (404, 422)
    missing = httpx.post(f"{url}/{'b' * 32}/approve", data={"csrf": csrf}, cookies=cookies)
    assert missing.status_code == 404
    assert catalog_ready.exemptions.list() == []
    # A notice is chosen by a fixed key; nothing else from the URL is shown.
    echoed = httpx.get(f"{url}?done=<b>x</b>", cookies=cookies)
    assert echoed.status_code == 422 and "<b>x</b>" not in echoed.text


def test_a_security_reviewer_is_refused_the_exemptions_page(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "sam", Role.SECURITY))
    response = page.goto(console.base_url + "/console/exemptions")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text("the admin role")
    console.screenshot("refused")
    cookies, csrf = _session(page)
    posted = httpx.post(
        console.base_url + "/console/exemptions",
        data={"csrf": csrf, "org": "deccan"},
        cookies=cookies,
    )
    assert posted.status_code == 403
    assert catalog_ready.audit.query(event="exemption.propose") == []
