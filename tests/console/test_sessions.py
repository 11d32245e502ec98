"""Console sessions and forms over plain HTTP: expiry, hostile forms, where sign-in returns."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.console.auth import is_console_path
from gateway.console.sessions import ConsoleSessions, pkce_challenge
from gateway.identity.principal import Principal, Role
from tests.conftest import START, mint


def _sign_in(client: httpx.Client, token: str) -> None:
    form = client.get("/console/sign-in")
    secret = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert secret is not None
    answer = client.post(
        "/console/sign-in/token",
        data={"token": token, "csrf": secret.group(1), "next": "/console/audit"},
    )
    assert answer.status_code == 303, answer.text


def test_a_session_ends_when_its_token_would_have(
    gateway_url: str, catalog_ready: Services, clock: FixedClock
) -> None:
    token = mint(catalog_ready, subject="sam", roles=(Role.SECURITY,), ttl=timedelta(minutes=5))
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        _sign_in(client, token)
        assert client.get("/console/audit").status_code == 200
        clock.advance(timedelta(minutes=5, seconds=1))
        ended = client.get("/console/audit")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/sign-in?next=/console/audit"


def test_no_session_outlives_a_working_day(catalog_ready: Services, clock: FixedClock) -> None:
    sessions = ConsoleSessions(catalog_ready.sessions, clock)
    principal = Principal("sam", "rhein", "DE", frozenset({Role.SECURITY}), None, "weightgate-dev")
    secret, opened = sessions.open(principal, START + timedelta(days=30))
    assert opened.expires_at == START + timedelta(hours=8)
    assert sessions.find(secret) is not None
    clock.advance(timedelta(hours=8))
    assert sessions.find(secret) is None


def test_sessions_and_sign_ins_on_postgres(pg_services: Services, clock: FixedClock) -> None:
    sessions = ConsoleSessions(pg_services.sessions, clock)
    principal = Principal("sam", "rhein", "DE", frozenset({Role.ADMIN}), "j-1", "weightgate-dev")
    secret, opened = sessions.open(principal, START + timedelta(minutes=30))
    found = sessions.find(secret)
    assert found is not None and found.principal == principal and found.csrf == opened.csrf
    sessions.close(secret)
    assert sessions.find(secret) is None
    state, under_way = sessions.begin_sign_in("https://idp.test", "/console/audit")
    assert sessions.finish_sign_in(state) == under_way
    assert sessions.finish_sign_in(state) is None  # single use


def test_a_sign_in_under_way_lapses(catalog_ready: Services, clock: FixedClock) -> None:
    sessions = ConsoleSessions(catalog_ready.sessions, clock)
    state, _ = sessions.begin_sign_in("https://idp.test", "/console/")
    clock.advance(timedelta(minutes=10))
    assert sessions.finish_sign_in(state) is None


def test_pkce_challenge_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


@pytest.mark.parametrize(
    ("cookie", "why"),
    [
        ("x" * 43, "well-formed but unknown"),
        ("x" * 4000, "too long"),
        ("é" * 43, "not ASCII"),
        ("", "empty"),
    ],
)
def test_a_forged_or_garbled_cookie_opens_nothing(gateway_url: str, cookie: str, why: str) -> None:
    answer = httpx.get(
        gateway_url + "/console/audit",
        headers={b"cookie": f"weightgate_console={cookie}".encode()},
        follow_redirects=False,
    )
    assert answer.status_code == 303, why


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("csrf=a&csrf=b", "application/x-www-form-urlencoded", 422),  # a field named twice
        ('{"csrf": "x"}', "application/json", 422),  # not a form
        (b"token=\xff\xfe", "application/x-www-form-urlencoded", 422),  # not UTF-8
        ("a=" + "x" * 20_000, "application/x-www-form-urlencoded", 413),  # over the body cap
    ],
)
def test_hostile_forms_are_refused_with_a_page_not_a_500(
    gateway_url: str, body: str | bytes, content_type: str, status: int
) -> None:
    answer = httpx.post(
        gateway_url + "/console/sign-in/token",
        content=body,
        headers={"content-type": content_type},
        follow_redirects=False,
    )
    assert answer.status_code == status


def test_the_sign_in_form_needs_its_own_csrf_cookie(
    gateway_url: str, catalog_ready: Services
) -> None:
    token = mint(catalog_ready, subject="sam", roles=(Role.SECURITY,))
    # A cross-site page cannot read our form's secret or set our cookie: with
    # no cookie (or a guessed value) the sign-in is refused, so no one can be
    # signed in to an attacker's session behind their back.
    answer = httpx.post(
        gateway_url + "/console/sign-in/token",
        data={"token": token, "csrf": "guessed"},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "weightgate_console=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/console/",
        "/console/../v1/orgs",
        "/console/\\evil",
        "/v1/audit/entries",
        "/console",
    ],
)
def test_sign_in_returns_only_to_console_pages(target: str) -> None:
    assert not is_console_path(target)


def test_sign_in_returns_to_the_page_asked_for(gateway_url: str, catalog_ready: Services) -> None:
    assert is_console_path("/console/audit?event=grant.allow")
    token = mint(catalog_ready, subject="sam", roles=(Role.SECURITY,))
    with httpx.Client(base_url=gateway_url, follow_redirects=False) as client:
        form = client.get("/console/sign-in", params={"next": "https://evil.example/"})
        secret = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert secret is not None
        answer = client.post(
            "/console/sign-in/token",
            data={"token": token, "csrf": secret.group(1), "next": "https://evil.example/"},
        )
    assert answer.headers["location"] == "/console/"
