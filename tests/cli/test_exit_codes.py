"""One exit status per kind of failure, as README.md and `weightgate --help` list them.

Each status is produced by the real `weightgate` executable doing what a user
does, against a real gateway where the failure comes from one.
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.api.background import free_port
from gateway.bootstrap import Services
from gateway.cli.main import EXIT_CODES
from gateway.cli.main import run as run_in_process
from gateway.clock import FixedClock
from gateway.identity.principal import Role
from tests.audit.support import rewrite_entry
from tests.cli.support import assert_fetch_error, assert_one_line_error, environment, run
from tests.conftest import MODEL, mint

README = Path(__file__).parents[2] / "README.md"
PROPOSE = ["exemptions", "propose", "--org", "o", "--reference", "r", "--countries", "IN"]
PROPOSE += ["--models", "*", "--until", "2027-01-01", "--reason", "r"]


def test_the_readme_and_help_list_the_same_exit_statuses(services: Services) -> None:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", README.read_text(encoding="utf-8"), re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == list(EXIT_CODES)
    shown = run(environment(services), "--help")
    assert shown.returncode == 0
    for code, meaning in EXIT_CODES:
        assert re.search(rf"^\W*{code}\s+{re.escape(meaning)}", shown.stdout, re.MULTILINE), meaning


def test_0_and_3_policy_explain_answers_allow_and_deny(services: Services) -> None:
    env = environment(services)
    assert run(env, "policy", "explain", "--country", "DE").returncode == 0
    denied = run(env, "policy", "explain", "--country", "DE", "--parent-hq", "CN")
    assert denied.returncode == 3 and "DENY" in denied.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (["orgs", "add"], "Missing argument 'ID'. (see weightgate orgs add --help)"),
        (["orgs", "nope"], "No such command 'nope'"),
        (["policy", "explain", "--contry", "DE"], "No such option: --contry"),
        (["token", "mint", "--sub", "a", "--org", "o", "--country", "DE", "--ttl", "0"], "--ttl"),
        (
            [*PROPOSE, "--kind", "licence"],
            "'licence' is not one of 'license', 'uveu', 'nveu'",
        ),
        (["policy", "explain", "--country", "germany"], "did you mean DE (Germany)?"),
        (["orgs", "add", "x", "--name", "X", "--hq", "south korea"], "did you mean KR"),
    ],
    ids=[
        "missing-argument",
        "unknown-command",
        "mistyped-option",
        "out-of-range",
        "kind",
        "country",
        "country-name",
    ],
)
def test_2_a_mistyped_command_line_is_one_line_not_a_usage_box(
    services: Services, args: list[str], text: str
) -> None:
    assert_one_line_error(run(environment(services), *args), 2, text)


@pytest.mark.usefixtures("gateway_url")
def test_3_a_policy_denial_says_why(catalog_ready: Services, tmp_path: Path) -> None:
    token = mint(catalog_ready, subject="li", org="panda-de")
    denied = run(environment(catalog_ready, token), "fetch", MODEL, "--out", str(tmp_path / "m"))
    assert denied.returncode == 3, denied.stderr
    lines = denied.stderr.splitlines()
    # The progress bar's line may come first; then the denial, then one line per reason.
    said = lines[[line.startswith("denied:") for line in lines].index(True) :]
    assert len(said) >= 2 and "Traceback" not in denied.stderr, denied.stderr
    assert all(line.startswith("  ") and "(" in line for line in said[1:]), said
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())


@pytest.mark.usefixtures("gateway_url")
def test_4_an_unknown_model_names_the_nearest_and_a_proof_beyond_the_log_is_not_found(
    catalog_ready: Services, tmp_path: Path
) -> None:
    env = environment(catalog_ready, mint(catalog_ready))
    assert_fetch_error(
        run(env, "fetch", "acme/frontier-2", "--out", str(tmp_path / "m")),
        4,
        f"did you mean {MODEL}?",
    )
    assert_one_line_error(run(env, "audit", "prove", "999"), 4, "has no entry 999")


def test_5_registering_an_organisation_twice_is_a_conflict(services: Services) -> None:
    env = environment(services)
    assert run(env, "orgs", "add", "rhein", "--name", "Rhein AI", "--hq", "DE").returncode == 0
    assert_one_line_error(
        run(env, "orgs", "add", "rhein", "--name", "Again", "--hq", "DE"), 5, "already exists"
    )


@pytest.mark.usefixtures("gateway_url")
def test_6_an_expired_token_is_expired_not_merely_unauthenticated(
    catalog_ready: Services, clock: FixedClock, tmp_path: Path
) -> None:
    token = mint(catalog_ready, ttl=timedelta(minutes=5))
    clock.advance(timedelta(hours=1))
    result = run(environment(catalog_ready, token), "fetch", MODEL, "--out", str(tmp_path / "m"))
    assert_fetch_error(result, 6, "token has expired")


def test_grants_revoke_stops_the_grant_urls_at_once(
    gateway_url: str, catalog_ready: Services
) -> None:
    token = mint(catalog_ready)
    recipient = base64.b64encode(X25519PrivateKey.generate().public_key().public_bytes_raw())
    grant = httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, "recipient_key": recipient.decode()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    env = environment(catalog_ready, token)
    revoked = run(env, "grants", "revoke", grant["id"])
    assert revoked.returncode == 0, revoked.stderr
    assert f"grant {grant['id']}: revoked" in revoked.stdout
    assert httpx.get(grant["files"][0]["url"], timeout=10).status_code == 410


def test_7_a_port_in_use_and_an_unreachable_gateway_are_unavailable(services: Services) -> None:
    env = environment(services)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert_one_line_error(
            run(env, "serve", "--port", str(port)), 7, f"cannot listen on 127.0.0.1:{port}"
        )
    nobody = {**env, "WEIGHTGATE_URL": f"http://127.0.0.1:{free_port()}", "WEIGHTGATE_TOKEN": "t"}
    assert_one_line_error(run(nobody, "exemptions", "list"), 7, "cannot reach the gateway")


def test_8_a_rewritten_audit_entry_fails_verification(catalog_ready: Services) -> None:
    env = environment(catalog_ready)
    assert run(env, "audit", "verify").returncode == 0
    rewrite_entry(catalog_ready, 0, subject="someone-else")
    assert_one_line_error(run(env, "audit", "verify"), 8, "audit log FAILED verification")


@pytest.mark.usefixtures("gateway_url")
def test_9_a_full_disk_is_found_before_downloading(
    catalog_ready: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A full disk cannot be made here without privileges: the free-space figure
    # is the one part replaced, in process; the grant and the gateway are real.
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _path: SimpleNamespace(total=1 << 30, used=1 << 30, free=1024)
    )
    for name, value in environment(catalog_ready, mint(catalog_ready)).items():
        if name.startswith("WEIGHTGATE_"):
            monkeypatch.setenv(name, value)
    status = run_in_process(["fetch", MODEL, "--out", str(tmp_path / "m")])
    assert status == 9
    assert "only 1,024 free" in capsys.readouterr().err


@pytest.mark.usefixtures("gateway_url")
def test_10_a_quota_set_from_the_cli_refuses_the_next_grant(
    catalog_ready: Services, tmp_path: Path
) -> None:
    admin = environment(catalog_ready, mint(catalog_ready, subject="root", roles=(Role.ADMIN,)))
    set_quota = run(
        admin,
        "quotas",
        "set",
        "org",
        "rhein",
        "--grants-per-hour",
        "0",
        "--bytes-per-day",
        "unlimited",
    )
    assert set_quota.returncode == 0, set_quota.stderr
    assert "org rhein: 0 grants per hour, no limit on bytes" in set_quota.stdout
    user = environment(catalog_ready, mint(catalog_ready))
    assert_fetch_error(run(user, "fetch", MODEL, "--out", str(tmp_path / "m")), 10, "try again in")
