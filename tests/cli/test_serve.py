"""``weightgate serve`` as an operator starts it: the URLs it issues, and what it records."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.api.background import free_port
from tests.cli.test_cli import WEIGHTGATE, _ready, assert_one_line_error, run, wait_until


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
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
    assert_one_line_error(result, 2, f"cannot listen on 127.0.0.1:{port}")
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
