"""A network failure names the URL that failed, never its capability or signature, in one line.

Each of the three places a fetch goes over the network fails for real here:
the grant request to a port nothing listens on, file URLs that a gateway
hands out for a public address it does not serve, and storage that stops
answering mid-download.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI

from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.bootstrap import Services, build_services
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient, public_url
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import NotFound, Unavailable
from gateway.policy.pack import Eccn
from tests.cli.test_cli import WEIGHTGATE, assert_one_line_error
from tests.conftest import MODEL, REVISION, mint, operator
from tests.faults.support import StallingProxy

SHARD = "model-00001-of-00002.safetensors"


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(COLUMNS="250", **extra)
    return base


def _fetch_cli(env: dict[str, str], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, "fetch", MODEL, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def _gateway_announcing(
    public: str, port: int, tmp_path: Path, clock: FixedClock, model_dir: Path
) -> Iterator[Services]:
    """A gateway serving on ``port`` whose file and storage URLs say ``public``."""
    settings = Settings(home=tmp_path / "home", keys_dir=tmp_path / "keys", url=public)
    init_keys(settings.keys_dir, dev_issuer=True)
    services = build_services(settings, clock)
    try:
        services.catalog.add_org("rhein", name="rhein", hq="DE", parent_hq=None, context=operator())
        services.catalog.publish(
            model_dir,
            model_id=MODEL,
            revision=REVISION,
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=operator(),
        )
        with serving(create_app(services), "127.0.0.1", port):
            yield services
    finally:
        services.close()


def test_public_url_drops_credentials_query_and_fragment() -> None:
    assert (
        public_url("https://u:pw@gw.example:8443/v1/grants/g1/files/a.bin?cap=deadbeef#x")
        == "https://gw.example:8443/v1/grants/g1/files/a.bin"
    )
    assert public_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/"


def test_unreachable_gateway_is_named_in_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = _fetch_cli(_env(WEIGHTGATE_URL=url, WEIGHTGATE_TOKEN="t"), tmp_path / "out")
    assert_one_line_error(result, 7, url)


def test_file_urls_on_a_port_nobody_serves_are_named_without_the_capability(
    tmp_path: Path, clock: FixedClock, model_dir: Path
) -> None:
    # What `serve --port N` without WEIGHTGATE_URL did: it listened on N and
    # handed out file URLs for the default port, where nothing listens.
    port, announced = free_port(), f"http://127.0.0.1:{free_port()}"
    with _gateway_announcing(announced, port, tmp_path, clock, model_dir) as services:
        real = f"http://127.0.0.1:{port}"
        with GatewayClient(real, mint(services)) as client, pytest.raises(Unavailable) as failed:
            fetch(client, MODEL, None, tmp_path / "lib")
        assert f"{announced}/v1/grants/" in failed.value.message
        assert "cap=" not in failed.value.message and "\n" not in failed.value.message
        result = _fetch_cli(
            _env(WEIGHTGATE_URL=real, WEIGHTGATE_TOKEN=mint(services)), tmp_path / "cli"
        )
        assert_one_line_error(result, 7, f"{announced}/v1/grants/")
        assert "cap=" not in result.stderr


def test_storage_that_stops_answering_is_named_without_its_signature(
    tmp_path: Path, clock: FixedClock, model_dir: Path
) -> None:
    port = free_port()
    with (
        StallingProxy(port) as proxy,
        _gateway_announcing(proxy.url, port, tmp_path, clock, model_dir) as services,
        GatewayClient(f"http://127.0.0.1:{port}", mint(services), timeout=1.0) as client,
    ):
        stalled = [False]

        def stall_after_the_first_part(count: int) -> None:
            if count and not stalled[0]:
                stalled[0] = True
                proxy.stall()  # the storage URL in hand now leads nowhere

        options = FetchOptions(workers=1, part_chunks=2, include=(SHARD,))
        with pytest.raises(Unavailable) as failed:
            fetch(
                client, MODEL, None, tmp_path / "out", options, progress=stall_after_the_first_part
            )
    message = failed.value.message
    assert f"{proxy.url}/v1/blobs/" in message, message
    assert "?" not in message and "sig" not in message and "\n" not in message
    assert SHARD in message


def test_file_urls_answered_by_another_service_name_where(
    tmp_path: Path, clock: FixedClock, model_dir: Path
) -> None:
    # Something else listens where the gateway says its files are.
    port, other = free_port(), free_port()
    announced = f"http://127.0.0.1:{other}"
    with (
        serving(FastAPI(), "127.0.0.1", other),
        _gateway_announcing(announced, port, tmp_path, clock, model_dir) as services,
        GatewayClient(f"http://127.0.0.1:{port}", mint(services)) as client,
        pytest.raises(NotFound) as failed,
    ):
        fetch(client, MODEL, None, tmp_path / "out")
    assert f"from {announced}/v1/grants/" in failed.value.message
    assert "cap=" not in failed.value.message
