"""The command line as a user meets it: real processes, one-line errors, honest exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.demo import write_synthetic_model

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))

COMMANDS = [
    [],
    ["keys", "init"],
    ["serve"],
    ["token", "mint"],
    ["orgs", "add"],
    ["models", "publish"],
    ["models", "list"],
    ["fetch"],
    ["policy", "explain"],
    ["audit", "verify"],
    ["audit", "query"],
    ["demo"],
]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    base.update(WEIGHTGATE_HOME=str(tmp_path / "home"), WEIGHTGATE_KEYS_DIR=str(tmp_path / "keys"))
    return base


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], status: int, text: str) -> None:
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert text in lines[0]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "weightgate")
def test_every_command_has_help(env: dict[str, str], command: list[str]) -> None:
    result = run(env, *command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_policy_explain_json_has_the_contract_fields(env: dict[str, str]) -> None:
    result = run(env, "policy", "explain", "--country", "DE", "--parent-hq", "CN", "--json")
    assert result.returncode == 1  # a denial is not a success
    decision = json.loads(result.stdout)
    assert decision["effect"] == "deny" and decision["tier"] == 3
    assert decision["policy"] == "ai-diffusion-2025"
    assert all({"code", "citation"} <= set(r) for r in decision["reasons"])


def test_policy_explain_replays_a_past_day(env: dict[str, str]) -> None:
    before = run(env, "policy", "explain", "--country", "KH", "--at", "2026-02-02", "--json")
    after = run(env, "policy", "explain", "--country", "KH", "--at", "2026-02-03", "--json")
    assert json.loads(before.stdout)["tier"] == 3
    assert json.loads(after.stdout)["tier"] == 2


@pytest.mark.parametrize(
    ("args", "status", "text"),
    [
        (["policy", "explain", "--country", "XX"], 2, "not an ISO 3166-1"),
        (["policy", "explain", "--country", "DE", "--at", "yesterday"], 2, "YYYY-MM-DD"),
        (["policy", "explain", "--country", "DE", "--policy", "no-such-pack"], 2, "no policy pack"),
        (["fetch", "acme/m", "--out", "x"], 3, "WEIGHTGATE_TOKEN"),
        (["models", "list"], 7, "keys init"),
    ],
    ids=["unknown-country", "bad-date", "unknown-pack", "no-token", "no-keys"],
)
def test_user_mistakes_get_one_line_and_a_nonzero_exit(
    env: dict[str, str], args: list[str], status: int, text: str
) -> None:
    assert_one_line_error(run(env, *args), status, text)


def test_operator_flow_and_its_mistakes(env: dict[str, str], tmp_path: Path) -> None:
    created = run(env, "keys", "init")
    assert created.returncode == 0 and "audit signing key" in created.stdout
    keys = sorted(p.name for p in (tmp_path / "keys").rglob("*") if p.is_file())
    before = {p: p.read_bytes() for p in (tmp_path / "keys").rglob("*") if p.is_file()}
    again = run(env, "keys", "init")
    assert again.returncode == 0 and "nothing changed" in again.stdout
    assert {p: p.read_bytes() for p in before} == before, "keys init overwrote a key"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in before), keys

    assert run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE").returncode == 0
    assert_one_line_error(
        run(env, "orgs", "add", "rhein", "--name", "Again", "--hq", "DE"), 5, "already exists"
    )
    assert_one_line_error(
        run(env, "orgs", "add", "bad", "--name", "B", "--hq", "Germany"), 2, "not an ISO 3166-1"
    )

    model = tmp_path / "model"
    write_synthetic_model(model, shards=1, shard_bytes=50_000)
    publish = ["models", "publish", str(model), "--model", "acme/m", "--revision", "r1"]
    assert_one_line_error(
        run(env, *publish, "--eccn", "EAR99", "--training-ops", "3e26"), 2, "4E091"
    )
    assert_one_line_error(run(env, *publish, "--eccn", "5A002"), 2, "--eccn")
    assert_one_line_error(
        run(env, *publish, "--eccn", "4E091", "--training-ops", "lots"), 2, "not a number"
    )
    assert_one_line_error(
        run(
            env,
            "models",
            "publish",
            str(tmp_path / "nope"),
            "--model",
            "a/b",
            "--revision",
            "r1",
            "--eccn",
            "4E091",
        ),
        2,
        "not a directory",
    )
    published = run(env, *publish, "--eccn", "4E091", "--training-ops", "3e26")
    assert published.returncode == 0, published.stderr
    assert_one_line_error(run(env, *publish, "--eccn", "4E091"), 5, "already published")
    listing = run(env, "models", "list")
    assert "acme/m" in listing.stdout and "4E091" in listing.stdout and "3E+26" in listing.stdout

    verified = run(env, "audit", "verify")
    assert verified.returncode == 0 and "2 entries" in verified.stdout
    rows = run(env, "audit", "query", "--format", "jsonl").stdout.splitlines()
    assert [json.loads(r)["event"] for r in rows] == ["org.add", "model.publish", "model.publish"][
        :2
    ]
    csv_out = run(env, "audit", "query", "--format", "csv", "--event", "org.add").stdout
    assert csv_out.splitlines()[0].startswith("index,time,event")
    assert len(csv_out.splitlines()) == 2


def test_minted_token_is_a_jwt_for_the_dev_issuer(env: dict[str, str]) -> None:
    assert run(env, "keys", "init").returncode == 0
    result = run(
        env,
        "token",
        "mint",
        "--sub",
        "anna",
        "--org",
        "rhein",
        "--country",
        "de",
        "--role",
        "ml",
        "--role",
        "security",
    )
    assert result.returncode == 0
    assert result.stdout.count(".") == 2
    assert_one_line_error(
        run(env, "token", "mint", "--sub", "a", "--org", "o", "--country", "XX"),
        2,
        "not an ISO 3166-1",
    )
