"""Signing in to the console in a real browser: roles, CSRF, sessions that end."""

from __future__ import annotations

import httpx

from gateway.audit.events import EVENTS
from gateway.bootstrap import Services
from gateway.console.headers import CONTENT_SECURITY_POLICY
from gateway.identity.principal import Role
from tests.console.conftest import ConsoleBrowser, console_token


def test_a_visitor_signs_in_and_lands_on_the_page_asked_for(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.open("/console/audit")
    assert "/console/sign-in" in page.url
    console.screenshot("sign-in")
    console.sign_in(console_token(catalog_ready, "sam", Role.SECURITY), then="/console/audit")
    assert page.url == console.base_url + "/console/audit"
    assert "sam" in page.inner_text("header")
    cookie = next(c for c in page.context.cookies() if c["name"] == "weightgate_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"


def test_a_user_without_the_security_or_admin_role_is_refused(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "anna", Role.ML))
    assert page.inner_text("h1") == "Not allowed"
    assert "security or admin role" in page.inner_text("main")
    assert "ml" in page.inner_text("main")
    console.screenshot("refused")
    response = page.goto(console.base_url + "/console/audit")
    assert response is not None and response.status == 403


def test_a_form_without_the_csrf_token_is_refused_and_changes_nothing(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "sam", Role.SECURITY))
    page.evaluate("document.querySelector('header form input[name=csrf]').remove()")
    with page.expect_navigation():
        page.click("header form button")
    assert page.inner_text("h1") == "The form was refused"
    console.screenshot("csrf-refused")
    # Still signed in: the sign-out it carried did not happen.
    page.goto(console.base_url + "/console/audit")
    assert page.url.endswith("/console/audit")
    assert "Sign out" in page.inner_text("header")


def test_signing_out_ends_the_session_on_the_server(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    page = console.sign_in(console_token(catalog_ready, "sam", Role.SECURITY))
    secret = next(c for c in page.context.cookies() if c["name"] == "weightgate_console")["value"]
    with page.expect_navigation():
        page.click("header form button")
    assert "/console/sign-in" in page.url
    # The old cookie, replayed by hand, opens nothing.
    replayed = httpx.get(
        console.base_url + "/console/audit",
        cookies={"weightgate_console": secret},
        follow_redirects=False,
    )
    assert replayed.status_code == 303
    assert replayed.headers["location"].startswith("/console/sign-in")


def test_a_bad_token_is_refused_and_audited_as_the_api_would(
    console: ConsoleBrowser, catalog_ready: Services
) -> None:
    before = len(catalog_ready.audit.query(event="auth.reject"))
    page = console.sign_in("not-a-token")
    assert "token is malformed" in page.inner_text("[role=alert]")
    assert len(catalog_ready.audit.query(event="auth.reject")) == before + 1
    assert "auth.reject" in EVENTS


def test_every_console_response_carries_the_security_headers(gateway_url: str) -> None:
    for path in ("/console/sign-in", "/console/audit", "/console/static/console.css", "/console/x"):
        response = httpx.get(gateway_url + path, follow_redirects=False)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
