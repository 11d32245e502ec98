"""Fixtures for the fault drills: fake AWS credentials for this test only, a store to break."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.api.background import free_port
from tests.faults.support import MotoOnPort
from tests.storage.conftest import isolate_aws_environment


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake AWS credentials in this test's environment only; its processes inherit them."""
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)


@pytest.fixture
def moto_on_port() -> Iterator[MotoOnPort]:
    """A moto server that the drill may kill and start again on the same port."""
    moto = MotoOnPort(free_port())
    moto.start()
    try:
        yield moto
    finally:
        moto.close()
