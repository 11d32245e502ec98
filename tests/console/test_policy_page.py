"""The policy page in a real browser: the pack in force, explain, and a diff of two packs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from gateway.bootstrap import Services
from gateway.config import Settings
from gateway.identity.principal import Role
from tests.conftest import operator
from tests.console.conftest import ConsoleBrowser, console_token

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "non-enforcement-2025-05.toml"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The gateway with a configured pack folder holding the non-enforcement example."""
    packs = tmp_path / "packs"
    packs.mkdir()
    shutil.copy(EXAMPLE, packs / EXAMPLE.name)
    (packs / "notes.txt").write_text("not a pack")
    return settings.model_copy(update={"policy_dir": packs})


def test_the_pack_in_force_and_an_explained_denial_by_parent_headquarters(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    catalog_ready.policy.establish(operator())
    pack = catalog_ready.policy.current
    page = console.sign_in(
        console_token(catalog_ready, "sam", Role.SECURITY), then="/console/policy"
    )
    expect(page.locator("h1")).to_have_text("Policy")
    expect(page.locator("#pack-sha256")).to_have_text(pack.sha256)
    facts = page.inner_text("#pack")
    assert pack.name in facts and pack.version in facts
    assert catalog_ready.clock.now().strftime("%Y-%m-%d %H:%M:%S UTC") in facts
    console.screenshot("policy")

    page.fill("input[name=country]", "de")
    page.fill("input[name=org_hq]", "DE")
    page.fill("input[name=parent_hq]", "CN")
    with page.expect_navigation():
        page.click("#explain button")
    decision = page.locator("#decision")
    expect(decision.locator(".verdict")).to_contain_text("DENY")
    expect(decision.locator(".verdict .tier-badge")).to_have_text("Tier 3")
    codes = decision.locator("table.reasons tbody td.mono").all_inner_texts()
    assert "TIER3_BY_PARENT_HQ" in codes and "TIER_NOT_ALLOWED" in codes
    assert "Country Group D:5" in decision.inner_text()  # the citation travels with the reason
    assert page.input_value("input[name=parent_hq]") == "CN"  # the form keeps what was asked
    console.screenshot("policy-explained")

    # A code that is no country: the form again, with the API's message, and a 422.
    page.fill("input[name=parent_hq]", "ZZ")
    with page.expect_navigation() as navigation:
        page.click("#explain button")
    assert navigation.value is not None and navigation.value.status == 422
    expect(page.locator("#explain-error")).to_contain_text("not an ISO 3166-1 alpha-2 country code")
    assert page.locator("#decision").count() == 0
    # A value the API's schema refuses (one letter) is refused the same way.
    response = page.goto(console.base_url + "/console/policy?form=explain&country=D")
    assert response is not None and response.status == 422
    expect(page.locator("#explain-error")).to_contain_text("country")
    console.screenshot("policy-refused")


def test_a_diff_with_the_non_enforcement_pack_moves_tier_2_and_the_indian_organisation(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "ada", Role.ADMIN), then="/console/policy")
    options = page.locator("select[name=pack_b] option").all_inner_texts()
    assert "non-enforcement-2025-05" in options and "ai-diffusion-2025" in options
    assert not any("notes" in option for option in options)
    page.select_option("select[name=pack_b]", "non-enforcement-2025-05")
    page.fill("input[name=on_a]", "2026-12-01")
    with page.expect_navigation():
        page.click("#diff button")
    result = page.locator("#diff-result")
    expect(result).to_contain_text("ai-diffusion-2025 2025-01-15.1 on 2026-12-01")
    expect(result).to_contain_text("non-enforcement-2025-05 2025-05-13.1 on 2026-12-01")
    # Every Tier 2 country becomes Tier 1: too many for a row each, so one row of codes.
    group = page.locator("#tier-changes tr.group")
    expect(group).to_have_count(1)
    cells = group.locator("td")
    assert cells.nth(0).inner_text().endswith("countries")
    assert int(cells.nth(0).inner_text().split()[0]) > 100
    assert "IN" in cells.nth(1).inner_text().split()
    assert (cells.nth(2).inner_text(), cells.nth(3).inner_text()) == ("Tier 2", "Tier 1")
    # The registered Indian organisation would be allowed where it is denied today.
    row = page.locator("#decision-changes tr", has_text="org deccan")
    expect(row.locator("td").nth(1)).to_have_text("deny Tier 2")
    expect(row.locator("td").nth(2)).to_have_text("allow Tier 1")
    assert page.locator("#decision-changes tr", has_text="org panda-de").count() == 0
    console.screenshot("policy-diff")

    # Only names from the list: a path, or a name not there, is refused and nothing is read.
    for chosen in ("docs/examples/non-enforcement-2025-05.toml", "notes", "../../etc/passwd"):
        response = page.goto(console.base_url + f"/console/policy?form=diff&pack_b={chosen}")
        assert response is not None and response.status == 422
        expect(page.locator("#diff-error")).to_contain_text("is not one of the packs")
    response = page.goto(console.base_url + "/console/policy?form=diff&on_a=2026-13-01")
    assert response is not None and response.status == 422
    expect(page.locator("#diff-error")).to_contain_text("date A must be an ISO 8601 date")
    console.screenshot("policy-diff-refused")


def test_the_policy_page_needs_the_security_or_admin_role(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "anna", Role.ML), then="/console/policy")
    expect(page.locator("h1")).to_have_text("Not allowed")
    assert page.locator("#pack").count() == 0
    console.screenshot("policy-refused-role")
