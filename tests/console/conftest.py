"""A real browser on the console: Debian's chromium driven by Playwright, on loopback only.

Playwright's own browser download is not available here, so the tests drive
``/usr/bin/chromium`` (``WEIGHTGATE_TEST_CHROMIUM`` names another). Without
it they are reported as skipped, with the reason; ``.ci/run`` installs it.
Every page a test opens is screenshotted under ``tests/artifacts/console``
(``WEIGHTGATE_TEST_ARTIFACTS`` names another folder), and every request the
browser makes is checked to go to the gateway and nowhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway.bootstrap import Services
from gateway.identity.principal import Role
from tests.conftest import mint

CHROMIUM = Path(os.environ.get("WEIGHTGATE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = (
    Path(
        os.environ.get(
            "WEIGHTGATE_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts"
        )
    )
    / "console"
)
# As the machine's own probe starts it: no sandbox as root, and none of the
# background traffic (updates, sync, safe browsing) a closed network refuses.
_CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


# One browser for this folder's tests, stopped after them: Playwright's sync
# API keeps an event loop running on the main thread while it is started, and
# tests elsewhere that call asyncio.run() must not find one.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"no browser at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=_CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class ConsoleBrowser:
    """One browser context on one gateway: pages, sign-in, screenshots, and where it went."""

    page: Page
    base_url: str
    name: str
    requested: list[str] = field(default_factory=list)

    def open(self, path: str) -> Page:
        self.page.goto(self.base_url + path)
        return self.page

    def sign_in(self, token: str, *, then: str = "/console/") -> Page:
        self.open("/console/sign-in?next=" + quote(then, safe="/"))
        self.page.fill("textarea[name=token]", token)
        with self.page.expect_navigation():
            self.page.click("button:text('Sign in with token')")
        return self.page

    def screenshot(self, step: str, *, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{self.name}-{step}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def foreign_requests(self) -> list[str]:
        gateway = urlsplit(self.base_url).netloc
        return [
            url
            for url in self.requested
            if not url.startswith("data:") and urlsplit(url).netloc != gateway
        ]


@pytest.fixture
def console(
    browser: Browser, gateway_url: str, request: pytest.FixtureRequest
) -> Iterator[ConsoleBrowser]:
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    opened = ConsoleBrowser(page, gateway_url, name)
    page.on("request", lambda sent: opened.requested.append(sent.url))
    try:
        yield opened
    finally:
        context.close()
    assert opened.foreign_requests() == [], "the console asked a host other than the gateway"


def console_token(
    services: Services, subject: str, *roles: Role, org: str = "rhein", country: str = "DE"
) -> str:
    return mint(
        services, subject=subject, org=org, country=country, roles=roles or (Role.SECURITY,)
    )
