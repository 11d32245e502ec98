"""A mistyped WEIGHTGATE_HOME or WEIGHTGATE_KEYS_DIR is refused, never silently made empty.

Only ``keys init`` and ``serve`` create state; every other operator command
names the absolute path it looked in and how to create it, and leaves nothing
behind there.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from gateway.crypto.keyring import init_keys
from gateway.demo import write_synthetic_model
from tests.cli.test_cli import WEIGHTGATE, assert_one_line_error, run

# The exit status for state or keys that are not where the configuration says (not found).
NO_STATE = 4

OPENS_STATE = [
    ["orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE"],
    ["orgs", "list"],
    ["models", "list"],
    ["models", "publish", "MODEL", "--model", "acme/m", "--revision", "r1", "--eccn", "4E091"],
    ["audit", "verify"],
    ["audit", "query"],
    ["audit", "prove", "0"],
    ["audit", "public-key"],
]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    """A gateway set up as the README says, once for every command below."""
    root = tmp_path_factory.mktemp("installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env.update(WEIGHTGATE_HOME=str(root / "home"), WEIGHTGATE_KEYS_DIR=str(root / "keys"))
    created = run(env, "keys", "init")
    assert created.returncode == 0, created.stderr
    write_synthetic_model(root / "model", shards=1, shard_bytes=4096)
    return env, root


def _args(command: list[str], root: Path) -> list[str]:
    return [str(root / "model") if arg == "MODEL" else arg for arg in command]


@pytest.mark.parametrize("command", OPENS_STATE, ids=" ".join)
def test_a_mistyped_home_is_refused_and_nothing_is_created(
    installed: tuple[dict[str, str], Path], command: list[str]
) -> None:
    env, root = installed
    typo = root / "hmoe"
    result = run({**env, "WEIGHTGATE_HOME": str(typo)}, *_args(command, root))
    assert_one_line_error(result, NO_STATE, str(typo))
    assert "WEIGHTGATE_HOME" in result.stderr and "weightgate keys init" in result.stderr
    assert not typo.exists(), "a command other than keys init or serve created state"


@pytest.mark.parametrize("command", OPENS_STATE[:3], ids=" ".join)
def test_a_mistyped_keys_dir_is_refused_and_nothing_is_created(
    installed: tuple[dict[str, str], Path], command: list[str]
) -> None:
    env, root = installed
    typo = root / "kyes"
    result = run({**env, "WEIGHTGATE_KEYS_DIR": str(typo)}, *_args(command, root))
    assert_one_line_error(result, NO_STATE, str(typo))
    assert "WEIGHTGATE_KEYS_DIR" in result.stderr and "weightgate keys init" in result.stderr
    assert not typo.exists()


def test_a_relative_home_is_named_by_its_absolute_path(
    installed: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, _root = installed
    result = subprocess.run(
        [WEIGHTGATE, "orgs", "list"],
        env={**env, "WEIGHTGATE_HOME": ".weightgate-typo"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_one_line_error(result, NO_STATE, str(tmp_path / ".weightgate-typo"))
    assert not (tmp_path / ".weightgate-typo").exists()


def test_keys_init_creates_the_state_the_other_commands_open(
    installed: tuple[dict[str, str], Path],
) -> None:
    env, root = installed
    assert (root / "home" / "weightgate.db").is_file()
    listed = run(env, "orgs", "list")
    assert listed.returncode == 0, listed.stderr


def test_a_database_without_the_schema_is_refused_until_keys_init(
    tmp_path: Path, postgres_url: str
) -> None:
    init_keys(tmp_path / "keys")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env.update(
        WEIGHTGATE_HOME=str(tmp_path / "home"),
        WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"),
        WEIGHTGATE_DATABASE_URL=postgres_url,
    )
    database = postgres_url.rsplit("/", 1)[1]
    refused = run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE")
    assert_one_line_error(refused, NO_STATE, database)
    assert "WEIGHTGATE_DATABASE_URL" in refused.stderr and "keys init" in refused.stderr
    engine = create_engine(postgres_url)
    try:
        assert inspect(engine).get_table_names() == [], "the refused command created tables"
    finally:
        engine.dispose()

    created = run(env, "keys", "init")
    assert created.returncode == 0, created.stderr
    added = run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE")
    assert added.returncode == 0, added.stderr
    assert "rhein" in run(env, "orgs", "list").stdout


def test_migrate_creates_the_schema_once_and_then_finds_it_at_head(
    tmp_path: Path, postgres_url: str
) -> None:
    """The deploy job's step: a database URL and nothing local (a read-only filesystem)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env |= {"WEIGHTGATE_DATABASE_URL": postgres_url, "WEIGHTGATE_HOME": str(tmp_path / "nowhere")}
    first = run(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "created the gateway's state" in first.stdout
    again = run(env, "migrate")
    assert again.returncode == 0, again.stderr
    assert "at the newest schema" in again.stdout
    assert not (tmp_path / "nowhere").exists()
    engine = create_engine(postgres_url)
    try:
        assert "audit_entries" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
