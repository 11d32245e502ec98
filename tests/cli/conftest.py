"""The environment of a user on a fresh machine: a home and a keys directory of their own."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(
        WEIGHTGATE_HOME=str(tmp_path / "home"),
        WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"),
        COLUMNS="250",  # tables as on a wide terminal, so cells are not wrapped
    )
    return base
