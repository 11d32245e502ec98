"""`weightgate audit verify`: exit 0 on an intact log, else non-zero naming the first bad index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gateway.bootstrap import Services
from gateway.cli.main import EXIT_STATUS, app
from gateway.errors import IntegrityError, NotFound
from tests.audit.support import (
    FILLED,
    FILLED_CHECKPOINTS,
    decision_event,
    delete_where,
    overwrite,
    row,
)

WEIGHTGATE = Path(sys.executable).with_name("weightgate")


def environment(services: Services) -> dict[str, str]:
    # Drop any WEIGHTGATE_* the developer has set, so only this log is read.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env["WEIGHTGATE_HOME"] = str(services.settings.home)
    env["WEIGHTGATE_KEYS_DIR"] = str(services.settings.keys_dir)
    env["COLUMNS"] = "200"  # keep rich from wrapping the one-line verdict
    return env


def run_verify(services: Services) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WEIGHTGATE), "audit", "verify"],
        env=environment(services),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_intact_log_verifies_in_process(filled: Services) -> None:
    result = CliRunner().invoke(app, ["audit", "verify"], env=environment(filled))
    assert result.exit_code == 0, result.output
    assert result.exception is None
    # Every checkpoint is checked twice: its row in the database and its anchor file.
    anchors = f"file://{filled.settings.home / 'checkpoints'}"
    assert result.output == (
        f"ok: {FILLED} entries, {FILLED_CHECKPOINTS} signed checkpoints verified in the "
        f"database and {FILLED_CHECKPOINTS} anchored at {anchors}\n"
    )


def test_entries_awaiting_a_checkpoint_are_reported_not_failed(filled: Services) -> None:
    # Checkpoints are published on an interval, so a live log has an unsigned
    # tail: verification says how long it is instead of vouching for it.
    filled.audit.append([decision_event(filled, n) for n in range(FILLED, FILLED + 3)])
    result = CliRunner().invoke(app, ["audit", "verify"], env=environment(filled))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"ok: {FILLED + 3} entries, {FILLED_CHECKPOINTS} signed")
    assert lines[1].startswith("3 newest entries are not yet covered by a checkpoint")

    filled.publisher.publish()
    result = CliRunner().invoke(app, ["audit", "verify"], env=environment(filled))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"ok: {FILLED + 3} entries, {FILLED_CHECKPOINTS + 1} signed checkpoints verified in "
        f"the database and {FILLED_CHECKPOINTS + 1} anchored"
    )
    assert "not yet covered" not in result.output


def test_deleted_row_fails_in_process_naming_the_index(filled: Services) -> None:
    delete_where(filled, first=12, last=12)
    result = CliRunner().invoke(app, ["audit", "verify"], env=environment(filled))
    assert result.exit_code != 0
    assert isinstance(result.exception, IntegrityError)
    assert "at index 12: deleted" in result.exception.message


def test_intact_log_exits_zero(filled: Services) -> None:
    result = run_verify(filled)
    assert result.returncode == 0, result.stderr
    assert f"{FILLED} entries" in result.stdout


def test_modified_row_exits_non_zero_naming_the_index(filled: Services) -> None:
    original = row(filled, 7)
    overwrite(
        filled,
        7,
        original.entry.replace(b'"effect":"deny"', b'"effect":"allow"'),
        original.leaf_hash,
    )
    result = run_verify(filled)
    assert result.returncode == EXIT_STATUS[IntegrityError] != 0
    verdict = " ".join(result.stderr.split())
    assert "FAILED verification at index 7: modified" in verdict, result.stderr


def _verify_cli(services: Services, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WEIGHTGATE), "audit", "verify", *flags],
        env=environment(services),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_an_empty_log_is_not_reported_as_verified(services: Services) -> None:
    # Pointed at the wrong home, a reviewer would otherwise read "ok" about nothing.
    result = _verify_cli(services)
    assert result.returncode == EXIT_STATUS[NotFound] == 4
    assert "ok" not in result.stdout
    assert "the audit log is empty: there is nothing to verify" in " ".join(result.stderr.split())
    as_json = _verify_cli(services, "--format", "json")
    assert as_json.returncode == 4
    assert json.loads(as_json.stdout)["status"] == "empty"


def test_json_verdict_of_an_intact_log(filled: Services) -> None:
    result = _verify_cli(filled, "--format", "json")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert verdict == {
        "status": "ok",
        "size": FILLED,
        "verified_from": 0,
        "checkpoints_in_database": FILLED_CHECKPOINTS,
        "checkpoints_anchored": FILLED_CHECKPOINTS,
        "anchor_store": f"file://{filled.settings.home / 'checkpoints'}",
        "unsigned": 0,
        "problems": [],
    }


def test_json_verdict_of_a_tampered_log_names_the_index_and_exits_non_zero(
    filled: Services,
) -> None:
    delete_where(filled, first=12, last=12)
    result = _verify_cli(filled, "--format", "json")
    assert result.returncode == EXIT_STATUS[IntegrityError]
    verdict = json.loads(result.stdout)
    assert verdict["status"] == "failed"
    assert (verdict["problems"][0]["index"], verdict["problems"][0]["kind"]) == (12, "deleted")
