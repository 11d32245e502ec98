"""The audit log page in a real browser: filters, the checkpoint header, proofs checked in the page.

The verification tests name what they stop: an entry rewritten in the
database after it was signed, a gateway that swaps its log key, and an entry
read before any checkpoint covers it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from playwright.sync_api import Page, expect
from sqlalchemy import text

from gateway.audit import checkpoint
from gateway.audit.export import CSV_COLUMNS
from gateway.audit.witness import accept_cosignature
from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.console.pages import audit as audit_page
from gateway.identity.principal import Role
from tests.conftest import MODEL, mint, operator
from tests.console.conftest import ConsoleBrowser, console_token

CHECKS = 8  # the list items verify.js reports for a covered entry


def _grant(services: Services, url: str, subject: str, org: str) -> int:
    """A grant request through the API; its audit index."""
    token = mint(services, subject=subject, org=org, country="DE")
    key = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    response = httpx.post(
        f"{url}/v1/grants",
        json={"model": MODEL, "recipient_key": key},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (201, 403), response.text
    index: int = response.json()["audit_index"]
    return index


# Each entry's evidence through verify.js's own functions: the root each path leads to.
_EVERY_PATH = """async size => {
  const { leafHash, rootFromPath } = window.weightgateAudit;
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const roots = [];
  for (let i = 0; i < size; i++) {
    const evidence = await (await fetch(`/console/audit/${i}/evidence`)).json();
    const leaf = await leafHash(bytes(evidence.entry));
    roots.push(hex(await rootFromPath(BigInt(i), BigInt(size), leaf, evidence.proof.map(bytes))));
  }
  return roots;
}"""
_NEIGHBOUR_PATH = """async size => {
  const { leafHash, rootFromPath, parseCheckpoint } = window.weightgateAudit;
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
  const held = [];
  for (let i = 1; i < size; i++) {
    const mine = await (await fetch(`/console/audit/${i}/evidence`)).json();
    const other = await (await fetch(`/console/audit/${i - 1}/evidence`)).json();
    const leaf = await leafHash(bytes(other.entry));
    const root = await rootFromPath(BigInt(i), BigInt(size), leaf, mine.proof.map(bytes));
    held.push(same(root, parseCheckpoint(mine.checkpoint).root));
  }
  return held;
}"""


def _signed_in(console: ConsoleBrowser, services: Services, then: str) -> Page:
    return console.sign_in(console_token(services, "sam", Role.SECURITY), then=then)


def _verify(page: Page, expected: str) -> None:
    page.click("#verify-button")
    expect(page.locator("#verdict")).to_have_attribute("data-result", expected)


def test_a_reviewer_filters_the_log_by_event_and_sees_only_matching_rows(
    console: ConsoleBrowser, catalog_ready: Services, gateway_url: str, clock: FixedClock
) -> None:
    allowed = _grant(catalog_ready, gateway_url, "anna", "rhein")
    denied = _grant(catalog_ready, gateway_url, "wei", "panda-de")
    published = catalog_ready.publisher.publish()
    assert published is not None
    # One witness has cosigned the newest checkpoint, another has not.
    cosigner, absent = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    catalog_ready.witnesses.update(
        {"witness.one": cosigner.public_key(), "witness.two": absent.public_key()}
    )
    line = checkpoint.cosign(published.note, "witness.one", cosigner, 1_772_442_000)
    accept_cosignature(
        catalog_ready.audit.checkpoints, catalog_ready.witnesses, published.size, line
    )
    clock.advance(timedelta(minutes=3, seconds=5))

    page = _signed_in(console, catalog_ready, "/console/audit")
    assert page.inner_text("#checkpoint-size") == str(published.size)
    assert page.inner_text("#checkpoint-age") == "3 min 5 s"
    assert page.inner_text("[data-witness='witness.one']").endswith("cosigned")
    assert "not cosigned" in page.inner_text("[data-witness='witness.two']")
    assert "Times are UTC" in page.inner_text("#times-utc")
    assert page.locator("#audit-entries tbody tr").count() == published.size
    console.screenshot("all")

    page.select_option("select[name=event]", "grant.deny")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    assert "event=grant.deny" in page.url
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(1)
    assert rows.get_attribute("data-index") == str(denied)
    assert rows.locator(".deny").inner_text() == "deny"
    assert "wei" in rows.inner_text()
    console.screenshot("denials")

    page.select_option("select[name=event]", "")
    page.select_option("select[name=decision]", "allow")
    with page.expect_navigation():
        page.click("#audit-filters button[type=submit]")
    expect(rows).to_have_count(1)
    assert rows.get_attribute("data-index") == str(allowed)
    assert rows.locator(".allow").inner_text() == "allow"
    # The empty fields of the form filtered nothing: only the decision did.
    assert catalog_ready.audit.query(decision="allow")[0].index == allowed


def test_an_entry_s_inclusion_is_verified_in_the_page_and_a_swapped_log_key_fails(
    console: ConsoleBrowser, catalog_ready: Services, gateway_url: str
) -> None:
    index = _grant(catalog_ready, gateway_url, "anna", "rhein")
    for n in range(8):  # a tree of 13: ragged right edge, paths of every shape
        catalog_ready.catalog.add_org(
            f"o{n}", name=f"o{n}", hq="FR", parent_hq=None, context=operator()
        )
    published = catalog_ready.publisher.publish()
    assert published is not None and published.size == 13
    page = _signed_in(console, catalog_ready, f"/console/audit/{index}")
    assert page.inner_text("#entry-leaf-hash") == catalog_ready.audit.entry(index).leaf_hash.hex()
    assert f'"index": {index}' in page.inner_text("#entry-json")

    _verify(page, "verified")
    checks = page.locator("#checks li")
    expect(checks).to_have_count(CHECKS)
    assert checks.evaluate_all("items => items.map(i => i.dataset.result)") == ["pass"] * CHECKS
    assert "first use" in checks.first.inner_text()
    console.screenshot("verified")

    # The page's RFC 9162 path walk rebuilds the same root as the Python tree,
    # from every leaf; the path of one leaf does not lead from its neighbour.
    roots = page.evaluate(_EVERY_PATH, published.size)
    assert roots == [published.root.hex()] * published.size
    assert page.evaluate(_NEIGHBOUR_PATH, published.size) == [False] * (published.size - 1)

    # A gateway that now serves another key (or whose pin was another log's)
    # is not believed, however well its new key signs.
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw())
    page.evaluate(
        "key => localStorage.setItem('weightgate.console.audit-log-key',"
        " JSON.stringify({origin: document.querySelector('#verify-button').dataset.origin, key}))",
        other.decode(),
    )
    _verify(page, "failed")
    assert "log key changed" in page.inner_text("#checks li:first-child")
    assert "FAIL" in page.inner_text("[data-check^='Checkpoint signature verifies']")
    console.screenshot("key-changed")


def test_an_entry_rewritten_in_the_database_is_shown_failing(
    console: ConsoleBrowser, catalog_ready: Services, gateway_url: str
) -> None:
    index = _grant(catalog_ready, gateway_url, "anna", "rhein")
    catalog_ready.publisher.publish()
    original = catalog_ready.audit.entry(index).entry
    forged = original.replace(b'"subject":"anna"', b'"subject":"mallory"')
    assert forged != original
    with catalog_ready.engine.begin() as connection:
        connection.execute(
            text("UPDATE audit_entries SET entry = :entry WHERE idx = :idx"),
            {"entry": forged, "idx": index},
        )

    page = _signed_in(console, catalog_ready, f"/console/audit/{index}")
    assert '"subject": "mallory"' in page.inner_text("#entry-json")
    _verify(page, "failed")
    failing = page.locator("#checks li[data-result=fail]")
    assert failing.evaluate_all("items => items.map(i => i.dataset.check)") == [
        "Entry bytes hash to the leaf hash the gateway states",
        "Audit path leads from this entry's leaf to the checkpoint's root",
    ]
    # The checkpoint itself is genuine: the forgery is in the entry, and the page says so.
    assert (
        page.locator("[data-check^='Checkpoint signature verifies']").get_attribute("data-result")
        == "pass"
    )
    assert "Do not trust this entry" in page.inner_text("#verdict")
    console.screenshot("tampered")


def test_an_entry_no_checkpoint_covers_yet_says_so(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    catalog_ready.publisher.publish()
    catalog_ready.catalog.add_org("late", name="late", hq="FR", parent_hq=None, context=operator())
    size, _ = catalog_ready.audit.tree_state()
    entry = catalog_ready.audit.entry(size - 1)
    assert entry.as_dict()["org"]["id"] == "late"

    page = _signed_in(console, catalog_ready, f"/console/audit/{entry.index}")
    assert "not yet covered" in page.inner_text("main")
    _verify(page, "not-covered")
    assert "Not yet covered" in page.inner_text("#verdict")
    assert page.locator("#checks li").count() == 0
    console.screenshot("not-covered")

    evidence = page.request.get(f"{console.base_url}/console/audit/{entry.index}/evidence")
    assert evidence.json()["status"] == "not_yet_covered"
    assert evidence.json()["retry_after"] == 1
    missing = page.request.get(f"{console.base_url}/console/audit/999999/evidence")
    assert missing.status == 404 and missing.json()["status"] == "not_found"
    response = page.goto(f"{console.base_url}/console/audit/999999")
    assert response is not None and response.status == 404
    console.screenshot("unknown-entry")


def test_paging_and_export_of_a_filter_hold_exactly_the_filtered_entries(
    console: ConsoleBrowser,
    catalog_ready: Services,
    gateway_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_page, "PAGE_SIZE", 1)
    _grant(catalog_ready, gateway_url, "anna", "rhein")
    _grant(catalog_ready, gateway_url, "wei", "panda-de")
    _grant(catalog_ready, gateway_url, "wei", "panda-de")
    expected = [e.index for e in catalog_ready.audit.query(event="grant.deny", subject="wei")]
    assert len(expected) == 2

    page = _signed_in(console, catalog_ready, "/console/audit?event=grant.deny&subject=wei")
    console.screenshot("filtered")
    # The newest first; "Older" pages back, keeping the filters.
    assert page.locator("#audit-entries tbody tr").get_attribute("data-index") == str(expected[1])
    with page.expect_navigation():
        page.click("#older-page")
    assert "event=grant.deny" in page.url and "subject=wei" in page.url
    assert page.locator("#audit-entries tbody tr").get_attribute("data-index") == str(expected[0])
    assert page.get_attribute("#newest-page", "href") == (
        "/console/audit?subject=wei&event=grant.deny"
    )
    console.screenshot("second-page")
    exported = {}
    for link in ("#export-csv", "#export-ocsf"):
        href = page.get_attribute(link, "href")
        assert href is not None and "event=grant.deny" in href and "subject=wei" in href
        response = page.request.get(console.base_url + href)
        assert response.status == 200
        assert 'attachment; filename="weightgate-audit-' in response.headers["content-disposition"]
        exported[link] = response.text()

    table = list(csv.reader(io.StringIO(exported["#export-csv"])))
    assert tuple(table[0]) == CSV_COLUMNS
    assert [int(row[0]) for row in table[1:]] == expected
    assert {row[3] for row in table[1:]} == {"wei"}
    records = [json.loads(line) for line in exported["#export-ocsf"].splitlines()]
    assert [r["metadata"]["sequence"] for r in records] == expected
    assert {r["unmapped"]["weightgate"]["event"] for r in records} == {"grant.deny"}


def test_a_bad_filter_is_an_invalid_input_page_not_an_error(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = _signed_in(console, catalog_ready, "/console/audit")
    # Nothing has been published in this test: the header says so rather than showing zeros.
    assert "No checkpoint yet" in page.inner_text("#checkpoint")
    for query in ("tier=7", "country=XYZ", "since=garbage", "event=grant.maybe", "before=0"):
        response = page.goto(f"{console.base_url}/console/audit?{query}")
        assert response is not None and response.status == 422, query
        assert page.inner_text("h1") == "Invalid input"
        assert query.split("=")[0] in page.inner_text("main")
    for query in ("tier=7", "country=XYZ", "since=garbage", "event=grant.maybe", "after=-2"):
        export = page.request.get(f"{console.base_url}/console/audit/export?format=csv&{query}")
        assert export.status == 422, query
    console.screenshot("invalid")
    unknown_format = page.request.get(f"{console.base_url}/console/audit/export?format=xml")
    assert unknown_format.status == 422


def test_the_audit_pages_need_the_security_or_admin_role(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "anna", Role.ML))
    for path in ("/console/audit", "/console/audit/0", "/console/audit/0/evidence"):
        response = page.goto(console.base_url + path)
        assert response is not None and response.status == 403, path
    console.screenshot("refused")
