"""The API describes itself completely, and /docs works on a network with no way out.

Served over real HTTP by the gateway (SQLite, local storage), as a browser
on the operator's network would meet it.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

PROBLEM = "#/components/schemas/Problem"
# Routes a token is not asked for: capability URLs, public audit material, probes.
OPEN = {
    ("get", "/v1/grants/{grant_id}/files/{path}"),
    ("get", "/v1/blobs/{key}"),
    ("get", "/v1/audit/checkpoint"),
    ("get", "/v1/audit/proofs/inclusion"),
    ("get", "/v1/audit/proofs/consistency"),
    ("get", "/v1/audit/receipts/{index}"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
}


@pytest.fixture
def document(gateway_url: str) -> dict[str, Any]:
    response = httpx.get(f"{gateway_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_every_operation_is_described_and_declares_its_problems(document: dict[str, Any]) -> None:
    operations = _operations(document)
    assert len(operations) > 20
    for method, path, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary") and len(operation.get("description", "")) > 20, where
        answers = operation["responses"]
        assert any(status.startswith("2") or status == "307" for status in answers), where
        problems = [s for s in answers if s[0] in "45"]
        assert "500" in problems, where
        for status in problems:
            content = answers[status]["content"]
            assert list(content) == ["application/problem+json"], f"{where} {status}"
            assert content["application/problem+json"]["schema"] == {"$ref": PROBLEM}
            assert answers[status]["description"], f"{where} {status}"


def test_security_requirement_matches_each_routes_authentication(
    document: dict[str, Any],
) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "DPoP" in scheme["description"]
    for method, path, operation in _operations(document):
        authenticated = (method, path) not in OPEN
        assert (operation.get("security") == [{"bearer": []}]) == authenticated, path
        assert ("401" in operation["responses"]) == authenticated, path


def test_problem_schema_names_the_rfc_9457_members(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "instance", "code"} <= set(problem["properties"])


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in found.items() if k in ("src", "href", "data-openapi") and v]
        self._in_script = tag == "script" and "src" not in found

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, _tag: str) -> None:
        self._in_script = False


def test_docs_page_loads_nothing_from_another_host(gateway_url: str) -> None:
    page = httpx.get(f"{gateway_url}/docs", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self';" in policy and "default-src 'none'" in policy
    parsed = _References()
    parsed.feed(page.text)
    assert parsed.inline_scripts == 0, "an inline script needs 'unsafe-inline'"
    assert len(parsed.urls) >= 4
    for url in parsed.urls:
        absolute = urlsplit(urljoin(f"{gateway_url}/docs", url))
        assert absolute.netloc == urlsplit(gateway_url).netloc, url
    assert "cdn" not in page.text.lower()


def test_every_asset_the_docs_page_names_is_served_by_the_gateway(gateway_url: str) -> None:
    parsed = _References()
    parsed.feed(httpx.get(f"{gateway_url}/docs", timeout=10).text)
    kinds = {}
    for url in parsed.urls:
        response = httpx.get(urljoin(f"{gateway_url}/docs", url), timeout=10)
        assert response.status_code == 200, url
        assert response.content, url
        kinds[url.rsplit("/", 1)[-1]] = response
    assert b"SwaggerUIBundle" in kinds["swagger-ui-bundle.js"].content
    assert kinds["swagger-ui-bundle.js"].headers["content-type"].startswith("text/javascript")
    assert kinds["swagger-ui.css"].headers["content-type"].startswith("text/css")
    assert kinds["openapi.json"].json()["openapi"].startswith("3.1")


def test_unknown_docs_asset_is_a_404_problem(gateway_url: str) -> None:
    response = httpx.get(f"{gateway_url}/docs/assets/..%2F..%2Fetc%2Fpasswd", timeout=10)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
