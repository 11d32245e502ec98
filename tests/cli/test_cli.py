"""The command line as a user meets it: real processes, one-line errors, honest exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from gateway.api.background import free_port
from gateway.demo import write_synthetic_model
from tests.cli.support import start_large_publish

WEIGHTGATE = str(Path(sys.executable).with_name("weightgate"))

COMMANDS = [
    [],
    ["keys", "init"],
    ["serve"],
    ["token", "mint"],
    ["orgs", "add"],
    ["models", "publish"],
    ["models", "list"],
    ["gc"],
    ["fetch"],
    ["policy", "explain"],
    ["audit", "verify"],
    ["audit", "query"],
    ["demo"],
]


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
    assert result.returncode == 3  # a denial is not a success: the status of a refusal
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
        (["models", "list"], 4, "keys init"),
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
    listed = run(env, "orgs", "list").stdout
    assert "rhein" in listed and "Rhein AI" in listed and "DE" in listed
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
    rows = [
        json.loads(r) for r in run(env, "audit", "query", "--format", "jsonl").stdout.splitlines()
    ]
    assert [r["unmapped"]["weightgate"]["event"] for r in rows] == ["org.add", "model.publish"]
    assert [(r["class_uid"], r["type_uid"], r["metadata"]["sequence"]) for r in rows] == [
        (6003, 600301, 0),
        (6003, 600301, 1),
    ]
    assert all(len(r["unmapped"]["leaf_hash"]) == 64 for r in rows)
    csv_out = run(env, "audit", "query", "--format", "csv", "--event", "org.add").stdout
    assert csv_out.splitlines()[0].startswith("index,time,event")
    assert len(csv_out.splitlines()) == 2


def test_minted_token_is_a_jwt_for_the_dev_issuer(env: dict[str, str]) -> None:
    assert run(env, "keys", "init", "--dev-issuer").returncode == 0
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


def test_policy_diff_shows_countries_and_the_organisations_a_change_would_move(
    env: dict[str, str],
) -> None:
    assert run(env, "keys", "init").returncode == 0
    assert run(env, "orgs", "add", "angkor", "--name", "Angkor AI", "--hq", "KH").returncode == 0
    assert run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE").returncode == 0
    result = run(
        env,
        "policy",
        "diff",
        "ai-diffusion-2025",
        "ai-diffusion-2025",
        "--at",
        "2026-01-15",
        "--to",
        "2026-02-15",
    )
    assert result.returncode == 0, result.stderr
    assert "KH" in result.stdout and "Cambodia" in result.stdout
    assert "org angkor" in result.stdout and "org rhein" not in result.stdout
    assert "(Tier 3)" in result.stdout and "(Tier 2)" in result.stdout
    unchanged = run(
        env, "policy", "diff", "ai-diffusion-2025", "ai-diffusion-2025", "--at", "2026-03-01"
    )
    assert "no tier changes" in unchanged.stdout
    assert "none decided differently" in unchanged.stdout


def test_policy_diff_groups_a_move_many_countries_share(env: dict[str, str]) -> None:
    """A pack dropping Tier 2 moves over a hundred countries: one row of codes, not a page."""
    example = Path(__file__).parents[2] / "docs/examples/non-enforcement-2025-05.toml"
    args = ("policy", "diff", "ai-diffusion-2025", str(example), "--at", "2026-12-01")
    table = run(env, *args)
    assert table.returncode == 0, table.stderr
    listed = run(env, *args, "--format", "json")
    moved = [
        c
        for c in json.loads(listed.stdout)["countries"]
        if (c["tier_before"], c["tier_after"]) == (2, 1)
    ]
    assert len(moved) > 100 and {"IN", "KH", "IL"} <= {c["country"] for c in moved}
    assert f"{len(moved)} countries" in table.stdout
    assert "Cambodia" not in table.stdout  # named one by one only when few share a move
    assert len(table.stdout.splitlines()) < 60


def test_publish_records_the_classification_basis(env: dict[str, str], tmp_path: Path) -> None:
    assert run(env, "keys", "init").returncode == 0
    model = tmp_path / "model"
    write_synthetic_model(model, shards=1, shard_bytes=10_000)
    base = ["models", "publish", str(model), "--model", "acme/m"]
    below = run(
        env,
        *base,
        "--revision",
        "r1",
        "--eccn",
        "EAR99",
        "--training-ops",
        "4e26",
        "--below-frontier",
        "trails the best open model on every benchmark",
    )
    assert below.returncode == 0, below.stderr
    assert "less capable than the most capable published model" in below.stdout
    listing = run(env, "models", "list").stdout
    assert "EAR99" in listing and "trails the best open model" in listing
    stricter = run(env, *base, "--revision", "r2", "--eccn", "4E091", "--training-ops", "5e26")
    assert stricter.returncode == 0 and "classified 4E091" in stricter.stdout
    assert_one_line_error(
        run(env, *base, "--revision", "r3", "--eccn", "EAR99"), 5, "cannot make it EAR99"
    )


def test_sighup_switches_the_pack_of_a_running_gateway(env: dict[str, str], tmp_path: Path) -> None:
    shipped = Path(__file__).parents[2] / "gateway/policy/packs/ai-diffusion-2025.toml"
    pack = tmp_path / "policy.toml"
    pack.write_text(shipped.read_text(), encoding="utf-8")
    port = free_port()
    env = {**env, "WEIGHTGATE_POLICY": str(pack), "WEIGHTGATE_URL": f"http://127.0.0.1:{port}"}
    assert run(env, "keys", "init").returncode == 0
    server = subprocess.Popen(
        [WEIGHTGATE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    said: list[str] = []
    reader = threading.Thread(target=lambda: said.extend(server.stderr or ()), daemon=True)
    reader.start()
    try:
        wait_until(lambda: _ready(port))
        pack.write_text(pack.read_text().replace('version = "2025-01-15.1"', 'version = "local-2"'))
        server.send_signal(signal.SIGHUP)
        wait_until(
            lambda: (
                "local-2"
                in run(env, "audit", "query", "--event", "policy.load", "--format", "jsonl").stdout
            )
        )
        good = pack.read_text()
        pack.write_text("not = [valid", encoding="utf-8")
        server.send_signal(signal.SIGHUP)
        wait_until(lambda: any("policy reload refused" in line for line in said))
    finally:
        server.terminate()
        server.wait(timeout=30)
        reader.join(timeout=30)
        if server.stderr is not None:
            server.stderr.close()
    stderr = "".join(said)
    pack.write_text(good, encoding="utf-8")  # the CLI below loads the configured pack too
    loads = [
        json.loads(line)["unmapped"]["weightgate"]
        for line in run(
            env, "audit", "query", "--event", "policy.load", "--format", "jsonl"
        ).stdout.splitlines()
    ]
    assert [entry["pack"]["version"] for entry in loads] == ["2025-01-15.1", "local-2"]
    assert loads[1]["previous"]["version"] == "2025-01-15.1"
    assert "policy switched to ai-diffusion-2025 local-2" in stderr
    assert "policy reload refused" in stderr


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll an observable condition with a deadline: synchronisation, not a sleep."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_publish_interrupted_by_ctrl_c_leaves_no_ciphertext(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run(env, "keys", "init").returncode == 0
    objects = tmp_path / "home" / "blobs" / "objects"
    process = start_large_publish(env, tmp_path / "big", shard_bytes=8 << 20)
    # Interrupt once the first file is stored, while later ones are still to come.
    deadline = time.monotonic() + 60
    while not any(p.is_file() and not p.name.startswith(".") for p in objects.rglob("*")):
        assert process.poll() is None and time.monotonic() < deadline, "publish ended first"
        time.sleep(0.005)  # poll the store again
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "was not published" in stderr and "Traceback" not in stderr
    assert list(objects.rglob("*")) == [], "ciphertext left behind"
    assert "acme/big" not in run(env, "models", "list").stdout


def test_gc_lists_then_deletes_only_ciphertext_no_file_names(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert run(env, "keys", "init").returncode == 0
    write_synthetic_model(tmp_path / "model", shards=2, shard_bytes=10_000)
    published = run(
        env,
        "models",
        "publish",
        str(tmp_path / "model"),
        "--model",
        "acme/m",
        "--revision",
        "v1",
        "--eccn",
        "EAR99",
    )
    assert published.returncode == 0, published.stderr
    assert published.stderr == "", "no progress bar when stderr is not a terminal"
    objects = tmp_path / "home" / "blobs" / "objects"
    kept = sorted(p for p in objects.rglob("*") if p.is_file())
    # What a publish killed with SIGKILL leaves: one old upload, one in progress.
    old = objects / ("a" * 32) / ("b" * 32)
    young = objects / ("c" * 32) / ("d" * 32)
    for path in (old, young):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"ciphertext" * 1000)
    three_days_ago = time.time() - 3 * 86400
    os.utime(old, (three_days_ago, three_days_ago))

    listed = run(env, "gc")
    assert listed.returncode == 0, listed.stderr
    assert "a" * 32 in listed.stdout and "c" * 32 not in listed.stdout
    assert "1 unreferenced, 10,000 bytes; 1 more younger than 1d left alone" in listed.stdout
    assert old.exists(), "listing deleted something"

    deleted = run(env, "gc", "--delete")
    assert deleted.returncode == 0, deleted.stderr
    assert "deleted 1, 10,000 bytes" in deleted.stdout
    assert not old.exists() and young.exists()
    assert sorted(p for p in objects.rglob("*") if p.is_file() and p != young) == kept
    audit = run(env, "audit", "query", "--event", "storage.gc", "--format", "jsonl")
    [entry] = [json.loads(line) for line in audit.stdout.splitlines()]
    assert entry["unmapped"]["weightgate"]["blobs"][0]["key"] == "objects/" + "a" * 32
    assert_one_line_error(run(env, "gc", "--grace", "soon"), 2, "--grace")
