"""Console sign-in through an identity provider: the OIDC code flow with PKCE, and its attacks.

The gateway trusts one issuer, the small identity provider on loopback, with
a console client; the development issuer is not trusted beside it. One test
walks the flow in the browser; the attacks are plain HTTP, as an attacker
would send them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.api.background import free_port
from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.config import Settings
from tests.console.conftest import ConsoleBrowser
from tests.identity.idp import AUDIENCE, ISSUER, IdentityProvider, running_idp

SESSION_COOKIE = "weightgate_console"
STATE_COOKIE = "weightgate_console_oidc"
SAM = {"sub": "sam", "org": "rhein", "country": "DE", "roles": ["security"]}


@pytest.fixture
def idp(clock: FixedClock) -> Iterator[IdentityProvider]:
    with running_idp() as provider:
        provider.add_key("ES256")
        provider.now = clock.now  # tokens issued at the gateway's (fixed) time
        provider.signed_in = dict(SAM)
        yield provider


@pytest.fixture
def settings(tmp_path: Path, idp: IdentityProvider) -> Settings:
    issuers = [
        {
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks_url": idp.url,
            "algorithms": ["ES256"],
            "console": {
                "client_id": idp.client_id,
                "authorization_endpoint": idp.authorization_endpoint,
                "token_endpoint": idp.token_endpoint,
                "scopes": ["openid", "profile"],
            },
        }
    ]
    path = tmp_path / "issuers.json"
    path.write_text(json.dumps(issuers), encoding="utf-8")
    return Settings(
        home=tmp_path / "home",
        keys_dir=tmp_path / "keys",
        url=f"http://127.0.0.1:{free_port()}",
        issuers_file=path,
    )


@pytest.fixture
def browser_client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        yield client


def _begin(client: httpx.Client, next_page: str = "/console/audit") -> str:
    """Start a sign-in as a browser would; the provider's authorization URL."""
    started = client.get("/console/sign-in/oidc", params={"issuer": ISSUER, "next": next_page})
    assert started.status_code == 303, started.text
    return started.headers["location"]


def _at_provider(authorization_url: str) -> str:
    """The provider signs in its logged-in user and sends the browser back: the callback URL."""
    answered = httpx.get(authorization_url, follow_redirects=False)
    assert answered.status_code == 303, answered.text
    return answered.headers["location"]


def _with_state(callback: str, state: str) -> str:
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    return f"{parts.scheme}://{parts.netloc}{parts.path}?code={query['code'][0]}&state={state}"


def _no_session(client: httpx.Client, response: httpx.Response) -> None:
    assert SESSION_COOKIE not in response.cookies
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/console/audit").status_code == 303  # still sent to sign in


def test_a_reviewer_signs_in_through_the_identity_provider_and_lands_on_the_page_asked_for(
    console: ConsoleBrowser, idp: IdentityProvider
) -> None:
    page = console.open("/console/audit")
    assert "/console/sign-in" in page.url
    assert page.locator("textarea[name=token]").count() == 0  # no development issuer here
    console.screenshot("sign-in-choices")
    page.click(f"a:text('Sign in with {ISSUER}')")
    page.wait_for_url(console.base_url + "/console/audit")
    assert "sam" in page.inner_text("header")
    console.screenshot("signed-in")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies[SESSION_COOKIE]["sameSite"] == "Strict" and cookies[SESSION_COOKIE]["httpOnly"]
    assert STATE_COOKIE not in cookies  # spent with the sign-in
    # The provider's authorization endpoint is the one other host the browser saw.
    elsewhere = console.foreign_requests()
    assert elsewhere and all(url.startswith(idp.authorization_endpoint + "?") for url in elsewhere)
    sent = parse_qs(urlsplit(elsewhere[0]).query)
    assert sent["code_challenge_method"] == ["S256"] and sent["scope"] == ["openid profile"]
    assert sent["redirect_uri"] == [console.base_url + "/console/sign-in/callback"]
    console.requested[:] = [url for url in console.requested if url not in elsewhere]


def test_the_state_cookie_is_lax_so_the_providers_redirect_brings_it_back(
    browser_client: httpx.Client,
) -> None:
    started = browser_client.get(
        "/console/sign-in/oidc", params={"issuer": ISSUER, "next": "/console/"}
    )
    cookie = started.headers["set-cookie"].lower()
    assert cookie.startswith(STATE_COOKIE)
    assert "samesite=lax" in cookie and "httponly" in cookie and "path=/console/sign-in" in cookie


def test_a_callback_with_another_state_is_refused_and_leaves_the_real_one_usable(
    browser_client: httpx.Client,
) -> None:
    callback = _at_provider(_begin(browser_client))
    forged = browser_client.get(_with_state(callback, "A" * 43))
    assert forged.status_code == 400
    assert "not begun in this browser" in forged.text
    assert SESSION_COOKIE not in forged.cookies
    assert browser_client.get(callback).status_code == 200


def test_a_replayed_callback_opens_nothing(browser_client: httpx.Client, gateway_url: str) -> None:
    callback = _at_provider(_begin(browser_client))
    state = parse_qs(urlsplit(callback).query)["state"][0]
    assert browser_client.get(callback).status_code == 200
    # Someone who captured the URL, and the cookie too, replays both.
    with httpx.Client(base_url=gateway_url, cookies={STATE_COOKIE: state}) as thief:
        replayed = thief.get(callback)
        assert replayed.status_code == 400
        assert "already used" in replayed.text
        _no_session(thief, replayed)


def test_a_callback_in_a_browser_that_did_not_begin_the_sign_in_is_refused(
    browser_client: httpx.Client, gateway_url: str
) -> None:
    """Login CSRF: the attacker's own code and state, pushed into a victim's browser."""
    callback = _at_provider(_begin(browser_client))
    with httpx.Client(base_url=gateway_url) as victim:
        pushed = victim.get(callback)
        assert pushed.status_code == 400
        assert "no sign-in under way" in pushed.text
        _no_session(victim, pushed)


def test_a_stolen_code_injected_into_another_sign_in_fails_pkce_at_the_provider(
    browser_client: httpx.Client, gateway_url: str, idp: IdentityProvider
) -> None:
    victims_code = parse_qs(urlsplit(_at_provider(_begin(browser_client))).query)["code"][0]
    with httpx.Client(base_url=gateway_url) as attacker:
        own = _at_provider(_begin(attacker))
        own_state = parse_qs(urlsplit(own).query)["state"][0]
        injected = attacker.get(f"/console/sign-in/callback?code={victims_code}&state={own_state}")
        assert injected.status_code == 502
        assert "refused the sign-in" in injected.text and "invalid_grant" in injected.text
        _no_session(attacker, injected)
    assert idp.token_refusals == ["code_verifier does not match the code_challenge (PKCE)"]


def test_an_error_from_the_provider_is_shown_and_opens_nothing(
    browser_client: httpx.Client, idp: IdentityProvider
) -> None:
    idp.refuse_with = "access_denied"
    callback = _at_provider(_begin(browser_client))
    refused = browser_client.get(callback)
    assert refused.status_code == 401
    assert "access_denied" in refused.text
    _no_session(browser_client, refused)


def test_a_provider_down_at_the_exchange_fails_closed(
    browser_client: httpx.Client, idp: IdentityProvider
) -> None:
    callback = _at_provider(_begin(browser_client))
    idp.up = False
    failed = browser_client.get(callback)
    assert failed.status_code == 503
    _no_session(browser_client, failed)


def test_a_user_without_the_role_signs_in_and_is_refused_the_pages(
    browser_client: httpx.Client, idp: IdentityProvider
) -> None:
    idp.signed_in = {**SAM, "sub": "anna", "roles": ["ml"]}
    signed_in = browser_client.get(_at_provider(_begin(browser_client)))
    assert signed_in.status_code == 200 and SESSION_COOKIE in signed_in.cookies
    refused = browser_client.get("/console/audit")
    assert refused.status_code == 403
    assert "Not allowed" in refused.text and "anna" in refused.text


def test_an_id_token_with_another_sign_ins_nonce_is_refused_and_audited(
    browser_client: httpx.Client, idp: IdentityProvider, catalog_ready: Services
) -> None:
    idp.id_token_claims = {"nonce": "the-nonce-of-another-sign-in"}
    before = len(catalog_ready.audit.query(event="auth.reject"))
    refused = browser_client.get(_at_provider(_begin(browser_client)))
    assert refused.status_code == 401
    assert "nonce" in refused.text
    _no_session(browser_client, refused)
    rejections = catalog_ready.audit.query(event="auth.reject")
    assert len(rejections) == before + 1
    assert "nonce" in json.dumps(rejections[-1].as_dict())


@pytest.mark.parametrize(
    "next_page", ["https://evil.example/console/", "//evil.example/", "/console/../v1/grants"]
)
def test_a_next_page_off_the_console_is_ignored(
    browser_client: httpx.Client, next_page: str
) -> None:
    landed = browser_client.get(_at_provider(_begin(browser_client, next_page)))
    assert landed.status_code == 200
    assert 'content="0; url=/console/"' in landed.text
    assert "evil" not in landed.text and "v1" not in landed.text


def test_an_issuer_without_a_console_client_starts_nothing(browser_client: httpx.Client) -> None:
    refused = browser_client.get("/console/sign-in/oidc", params={"issuer": "weightgate-dev"})
    assert refused.status_code == 400
    assert STATE_COOKIE not in refused.cookies
