"""Running the real `weightgate` executable, as a user does, against a test gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gateway.bootstrap import Services

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))


def environment(services: Services, token: str | None = None) -> dict[str, str]:
    """The variables of a user on the gateway's host; no COLUMNS, so output is piped as is."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_") and k != "COLUMNS"
    }
    env.update(
        WEIGHTGATE_HOME=str(services.settings.home),
        WEIGHTGATE_KEYS_DIR=str(services.settings.keys_dir),
        WEIGHTGATE_URL=services.settings.url,
    )
    if token is not None:
        env["WEIGHTGATE_TOKEN"] = token
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert text in lines[0], lines[0]


def assert_fetch_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    """As assert_one_line_error, for `fetch`, whose progress bar may have drawn a line first."""
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error:") and text in lines[-1], result.stderr
    assert all("bytes" in line for line in lines[:-1]), result.stderr


def start_large_publish(
    env: dict[str, str], model: Path, *, shard_bytes: int
) -> subprocess.Popen[str]:
    """`models publish` of twelve random shards, running: long enough to interrupt half way."""
    model.mkdir()
    for shard in range(12):
        (model / f"shard-{shard:02}.bin").write_bytes(os.urandom(shard_bytes))
    command = ["models", "publish", str(model), "--model", "acme/big", "--revision", "v1"]
    return subprocess.Popen(
        [WEIGHTGATE, *command, "--eccn", "EAR99"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
