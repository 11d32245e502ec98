"""A real ``serve --workers 2``: its JSON log lines and its metrics, as operators read them.

Log lines must parse, name the route and the caller, and never carry a file
URL's capability or a storage URL's signature; ``/metrics`` must add up every
worker, whichever of them answers the scrape.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.api.background import free_port
from gateway.api.logging_setup import resolve_format
from gateway.errors import InvalidInput
from tests.cli.test_cli import assert_one_line_error
from tests.scenarios.deployment import WEIGHTGATE, Deployment, Replica, prepared, wait_until

FILE_ROUTE = "/v1/grants/{grant_id}/files/{path:path}"


@dataclass
class LoggedDeployment(Deployment):
    log_format: str = "json"

    def env(self, port: int) -> dict[str, str]:
        return {**super().env(port), "WEIGHTGATE_LOG_FORMAT": self.log_format}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LoggedDeployment]:
    with prepared(LoggedDeployment(tmp_path, None)) as made:
        yield made


def lines(replica: Replica) -> list[dict[str, Any]]:
    """Every line the process wrote so far, each of which must be one JSON object."""
    parsed = [json.loads(line) for line in replica.said().splitlines() if line.strip()]
    assert all(isinstance(line, dict) for line in parsed)
    return parsed


def grant_lines(replica: Replica) -> list[dict[str, Any]]:
    return [
        line
        for line in lines(replica)
        if line["logger"] == "gateway.access" and line.get("route") == "/v1/grants"
    ]


def allowed_decisions(replica: Replica) -> float:
    """The decision counter as one scrape, on a connection of its own, reports it."""
    text = httpx.get(f"{replica.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "weightgate_decisions":
            for sample in family.samples:
                if sample.labels == {"effect": "allow", "tier": "1"}:
                    return sample.value
    return 0.0


def worker_pids(replica: Replica) -> set[int]:
    started = (
        re.fullmatch(r"Started server process \[(\d+)\]", line["message"])
        for line in lines(replica)
    )
    return {int(match[1]) for match in started if match}


def metrics_dir(pid: int) -> Path:
    """Where a worker writes its samples, as its environment says."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [entry] = [e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(entry.partition(b"=")[2].decode())


def test_two_workers_log_json_without_capabilities_and_metrics_add_up_both(
    site: LoggedDeployment,
) -> None:
    server = site.start(workers=2)
    wait_until(lambda: server.ready() is not None, timeout=60)
    [directory] = {metrics_dir(pid) for pid in worker_pids(server)}
    secrets: list[str] = []
    granted = 0
    # Each request on a connection of its own, until both workers have granted.
    while len({line["pid"] for line in grant_lines(server)}) < 2:
        assert granted < 40, "one worker answered every grant"
        response = httpx.post(
            f"{server.url}/v1/grants",
            json=site.grant_body(),
            headers={"Authorization": f"Bearer {site.token()}"},
        )
        assert response.status_code == 201, response.text
        granted += 1
        url = response.json()["files"][0]["url"]
        redirect = httpx.get(url)
        assert redirect.status_code == 307
        assert httpx.get(redirect.headers["location"]).status_code == 200
        secrets.append(parse_qs(urlsplit(url).query)["cap"][0])
        secrets.append(parse_qs(urlsplit(redirect.headers["location"]).query)["sig"][0])
        wait_until(lambda: len(grant_lines(server)) == granted)  # noqa: B023 - read at once

    # Whichever worker answers, the scrape counts the grants of both.
    for _ in range(6):
        assert allowed_decisions(server) == granted
    server.stop()

    said = server.said()
    for secret in secrets:
        assert secret not in said
    for marker in ("cap=", "sig=", "X-Amz-Signature"):
        assert marker not in said
    logged = lines(server)
    assert {"time", "level", "logger", "message", "pid"} <= set(logged[0])
    grants = grant_lines(server)
    assert len(grants) == granted
    for line in grants:
        assert (line["method"], line["status"], line["subject"]) == ("POST", 201, "anna")
        assert re.fullmatch(r"[0-9a-f]{32}", line["request_id"])
        assert line["latency_ms"] > 0 and line["client"] == "127.0.0.1"
    files = [line for line in logged if line.get("route") == FILE_ROUTE]
    assert len(files) == granted
    assert all(line["status"] == 307 and line["subject"] is None for line in files)
    # The supervisor removes the workers' metrics with them.
    assert not directory.exists()


def test_a_killed_worker_stops_counting_in_gauges_but_not_in_counters(
    site: LoggedDeployment,
) -> None:
    server = site.start(workers=2)
    wait_until(lambda: server.ready() is not None, timeout=60)
    first = worker_pids(server)
    [directory] = {metrics_dir(pid) for pid in first}
    victim = min(first)
    live_gauge = directory / f"gauge_livesum_{victim}.db"
    counters = directory / f"counter_{victim}.db"
    assert live_gauge.exists() and counters.exists()

    os.kill(victim, signal.SIGKILL)  # a worker of the serve this test started

    wait_until(lambda: len(worker_pids(server)) == 3, timeout=60)  # its replacement
    wait_until(lambda: not live_gauge.exists())
    assert counters.exists()
    wait_until(lambda: server.ready() is not None, timeout=60)
    assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 200
    server.stop()


def test_log_format_auto_is_text_on_a_terminal_and_json_elsewhere(tmp_path: Path) -> None:
    terminal, other_end = os.openpty()
    try:
        with os.fdopen(os.dup(terminal), "w") as tty:
            assert resolve_format("auto", tty) == "text"
    finally:
        os.close(terminal)
        os.close(other_end)
    with (tmp_path / "file").open("w") as file:
        assert resolve_format("auto", file) == "json"
        assert resolve_format("text", file) == "text"
    with pytest.raises(InvalidInput, match="WEIGHTGATE_LOG_FORMAT"):
        resolve_format("yaml")


def test_serve_refuses_an_unknown_log_format_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env.update(WEIGHTGATE_HOME=str(tmp_path / "home"), WEIGHTGATE_LOG_FORMAT="yaml")
    result = subprocess.run(
        [WEIGHTGATE, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, 2, "WEIGHTGATE_LOG_FORMAT 'yaml'")
    assert not (tmp_path / "home").exists()
