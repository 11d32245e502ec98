"""`weightgate keys status | rotate | retire` as an operator runs them: processes, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.demo import write_synthetic_model

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(
        WEIGHTGATE_HOME=str(tmp_path / "home"),
        WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"),
        COLUMNS="200",
    )
    return base


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def ok(env: dict[str, str], *args: str) -> str:
    result = run(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(env: dict[str, str], status: int, *args: str) -> str:
    result = run(env, *args)
    assert result.returncode == status, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    return line


def test_an_operator_rotates_and_is_told_what_still_uses_the_old_kek(
    env: dict[str, str], tmp_path: Path
) -> None:
    write_synthetic_model(tmp_path / "model", shards=3, shard_bytes=50_000)
    ok(env, "keys", "init")
    ok(env, "orgs", "add", "rhein", "--name", "Rhein", "--hq", "DE")
    ok(env, "models", "publish", str(tmp_path / "model"), "--model", "acme/atlas",
       "--revision", "v1", "--eccn", "4E091")  # fmt: skip
    status = ok(env, "keys", "status")
    assert "local:v1" in status and "current" in status

    assert "is the current KEK" in refused(env, 5, "keys", "retire", "local:v1")
    assert "local:v7" in refused(env, 4, "keys", "retire", "local:v7")
    assert "--batch-size" in refused(env, 2, "keys", "rotate", "--batch-size", "0")

    rotated = ok(env, "keys", "rotate", "--batch-size", "2")
    assert "created local:v2" in rotated
    assert "4 data keys re-wrapped under local:v2 in 2 batches" in rotated
    cells = [
        [cell.strip() for cell in line.split("│")[1:4]]
        for line in ok(env, "keys", "status").splitlines()
        if "local:" in line
    ]
    assert cells == [["held", "0", "local:v1"], ["current", "4", "local:v2"]]
    # Running gateways may still hold the old wraps for a while.
    assert "retire local:v1 after" in refused(env, 5, "keys", "retire", "local:v1")

    # Run again: every key is under v2, so this is a new rotation onto v3.
    assert "created local:v3" in ok(env, "keys", "rotate")
