"""Capabilities in URLs never reach the access log of a real `serve`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.api.access_log import redact
from tests.scenarios.deployment import Deployment, prepared, wait_until


@dataclass
class TextLogDeployment(Deployment):
    """The text access log, as a terminal gets it (JSON lines: tests/ops)."""

    def env(self, port: int) -> dict[str, str]:
        return {**super().env(port), "WEIGHTGATE_LOG_FORMAT": "text"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Deployment]:
    with prepared(TextLogDeployment(tmp_path, None)) as made:
        yield made


def test_file_url_capabilities_and_storage_signatures_are_not_logged(site: Deployment) -> None:
    server = site.start()
    wait_until(lambda: server.ready() is not None)
    granted = httpx.post(
        f"{server.url}/v1/grants",
        json=site.grant_body(),
        headers={"Authorization": f"Bearer {site.token()}"},
    )
    assert granted.status_code == 201, granted.text
    url = granted.json()["files"][0]["url"]
    redirect = httpx.get(url)
    assert redirect.status_code == 307
    stored = httpx.get(redirect.headers["location"])
    assert stored.status_code == 200
    server.stop()

    secrets = [
        parse_qs(urlsplit(url).query)["cap"][0],
        parse_qs(urlsplit(redirect.headers["location"]).query)["sig"][0],
    ]
    said = server.said()
    assert "/files/" in said and "cap=[redacted]" in said and "sig=[redacted]" in said
    for secret in secrets:
        assert secret not in said


def test_redaction_keeps_everything_but_the_secret_values() -> None:
    assert (
        redact("/v1/grants/g/files/a.bin?cap=abc123&x=1")
        == "/v1/grants/g/files/a.bin?cap=[redacted]&x=1"
    )
    assert redact("/blobs/k?v=1&exp=9&sig=f00") == "/blobs/k?v=1&exp=9&sig=[redacted]"
    assert redact("/o?X-Amz-Signature=s&X-Amz-Credential=c") == (
        "/o?X-Amz-Signature=[redacted]&X-Amz-Credential=[redacted]"
    )
    assert redact("/v1/models?capacity=3") == "/v1/models?capacity=3"
    assert redact("/console/sign-in/callback?code=c0de&state=s7") == (
        "/console/sign-in/callback?code=[redacted]&state=[redacted]"
    )
