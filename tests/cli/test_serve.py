"""``weightgate serve`` as an operator starts it: the URLs it issues, and what it records."""

from __future__ import annotations

import filecmp
import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.api.background import free_port
from gateway.demo import write_synthetic_model
from tests.cli.test_cli import WEIGHTGATE, _ready, assert_one_line_error, run, wait_until


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """No WEIGHTGATE_URL: serve decides its own public URL."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(WEIGHTGATE_HOME=str(tmp_path / "home"), WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"))
    return base


@contextmanager
def serving(env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``weightgate serve ARGS``, its stderr in ``log``, stopped (SIGTERM) when the block ends."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            [WEIGHTGATE, "serve", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
        try:
            yield server
        finally:
            server.terminate()
            server.wait(timeout=60)


def policy_loads(home: Path) -> int:
    """``policy.load`` entries in the SQLite log, read as any other reader would."""
    database = home / "weightgate.db"
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        try:
            row = connection.execute(
                "SELECT count(*) FROM audit_entries WHERE event = 'policy.load'"
            ).fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0
    return int(row[0])


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_on_its_own_port_issues_urls_the_client_can_fetch(
    env: dict[str, str], tmp_path: Path, workers: int
) -> None:
    """Without WEIGHTGATE_URL, file URLs name the port serve binds, not 8080."""
    assert run(env, "keys", "init", "--dev-issuer").returncode == 0
    assert run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE").returncode == 0
    model = tmp_path / "model"
    write_synthetic_model(model, shards=2, shard_bytes=20_000)
    published = run(
        env, "models", "publish", str(model), "--model", "acme/m", "--revision", "r1",
        "--eccn", "4E091",
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    minted = run(env, "token", "mint", "--sub", "anna", "--org", "rhein", "--country", "DE")
    assert minted.returncode == 0, minted.stderr
    port = free_port()
    log = tmp_path / "serve.log"
    with serving(env, log, "--port", str(port), "--workers", str(workers)):
        wait_until(lambda: _ready(port), timeout=60)
        client = {
            **env,
            "WEIGHTGATE_URL": f"http://127.0.0.1:{port}",
            "WEIGHTGATE_TOKEN": minted.stdout.strip(),
        }
        fetched = run(client, "fetch", "acme/m@r1", "--out", str(tmp_path / "out"))
    assert fetched.returncode == 0, fetched.stderr
    for name in ("model-00001-of-00002.safetensors", "config.json"):
        assert filecmp.cmp(model / name, tmp_path / "out" / name, shallow=False)
    said = log.read_text()
    assert "WEIGHTGATE_URL" not in said, said
    # Trusting the development issuer is never quiet.
    assert "development token issuer" in said


@pytest.mark.parametrize("agrees", [True, False], ids=["same-address", "other-port"])
def test_serve_warns_once_when_weightgate_url_names_another_address(
    env: dict[str, str], tmp_path: Path, agrees: bool
) -> None:
    assert run(env, "keys", "init").returncode == 0
    port = free_port()
    configured = f"http://127.0.0.1:{port if agrees else free_port()}"
    log = tmp_path / "serve.log"
    with serving({**env, "WEIGHTGATE_URL": configured}, log, "--port", str(port)):
        wait_until(lambda: _ready(port), timeout=60)
    lines = [line for line in log.read_text().splitlines() if "WEIGHTGATE_URL" in line]
    if agrees:
        assert lines == []
    else:
        assert len(lines) == 1, lines
        assert configured in lines[0] and f"127.0.0.1:{port}" in lines[0]


def test_serve_on_a_port_in_use_records_and_creates_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run(env, "keys", "init").returncode == 0
    fresh = tmp_path / "fresh-home"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run({**env, "WEIGHTGATE_HOME": str(fresh)}, "serve", "--port", str(port))
    assert_one_line_error(result, 7, f"cannot listen on 127.0.0.1:{port}")
    assert not fresh.exists()


def test_a_serve_that_loses_the_port_to_a_rival_records_no_pack(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Two gateways starting on one port: the log names the pack only of the one serving.

    The rival is another ``serve`` caught between binding its socket and
    listening on it. Once this serve has recorded the pack in force, the rival
    tries to listen: the port must already be this serve's, or this serve
    fails after writing a ``policy.load`` for a gateway that never served.
    """
    assert run(env, "keys", "init").returncode == 0
    home = tmp_path / "home"
    port = free_port()
    rival = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    rival.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    rival.bind(("127.0.0.1", port))
    try:
        with serving(env, tmp_path / "serve.log", "--port", str(port)) as server:
            wait_until(lambda: policy_loads(home) > 0 or server.poll() is not None, timeout=60)
            try:
                rival.listen()
                rival_listens = True
            except OSError:
                rival_listens = False
            wait_until(lambda: server.poll() is not None or _ready(port), timeout=60)
            failed = server.poll() is not None
    finally:
        rival.close()
    assert not rival_listens, "the port was not this serve's when it recorded the pack"
    assert not failed
    assert policy_loads(home) == 1
