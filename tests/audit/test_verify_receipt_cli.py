"""`weightgate audit verify-receipt`: a receipt checked with nothing but files and the log's key."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.receipt import format_receipt
from gateway.bootstrap import Services
from tests.audit.support import append_and_publish, decision_event

WEIGHTGATE = Path(sys.executable).with_name("weightgate")


@pytest.fixture
def evidence(services: Services, tmp_path: Path) -> tuple[Path, Path, str]:
    """Entry 2's receipt and raw bytes in files, and the log's public key; then the log is gone."""
    for number in range(4):
        append_and_publish(services, [decision_event(services, number)])
    note, _, path = services.audit.receipt_material(2)
    receipt = tmp_path / "2.receipt"
    receipt.write_text(format_receipt(2, path, note), encoding="utf-8")
    entry = tmp_path / "2.json"
    entry.write_bytes(services.audit.entry(2).entry)
    key = services.keys.audit_signer.public_key().public_bytes_raw()
    return receipt, entry, base64.b64encode(key).decode()


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Offline: no gateway URL, and a home with no database in it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEIGHTGATE_")}
    env |= {"WEIGHTGATE_HOME": str(tmp_path / "nowhere"), "COLUMNS": "200"}
    return subprocess.run(
        [str(WEIGHTGATE), "audit", "verify-receipt", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_genuine_receipt_verifies_offline(
    evidence: tuple[Path, Path, str], tmp_path: Path
) -> None:
    receipt, entry, key = evidence
    result = _run(tmp_path, str(receipt), "--log-key", key, "--entry", str(entry))
    assert result.returncode == 0, result.stderr
    assert "ok: entry 2 (grant.deny) is in weightgate.local/audit, tree size 4" in result.stdout
    assert not (tmp_path / "nowhere").exists()


def test_an_edited_entry_fails_its_receipt(
    evidence: tuple[Path, Path, str], tmp_path: Path
) -> None:
    receipt, entry, key = evidence
    entry.write_bytes(entry.read_bytes().replace(b'"effect":"deny"', b'"effect":"allow"'))
    result = _run(tmp_path, str(receipt), "--log-key", key, "--entry", str(entry))
    assert result.returncode == 8
    assert "leaf 2 is not in the tree of size 4" in result.stderr


def test_a_receipt_signed_by_another_key_fails(
    evidence: tuple[Path, Path, str], tmp_path: Path
) -> None:
    receipt, entry, _ = evidence
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    result = _run(
        tmp_path,
        str(receipt),
        "--log-key",
        base64.b64encode(stranger).decode(),
        "--entry",
        str(entry),
    )
    assert result.returncode == 8


def test_the_entry_of_another_index_with_its_proof_path_is_refused(
    services: Services, evidence: tuple[Path, Path, str], tmp_path: Path
) -> None:
    receipt, entry, key = evidence
    entry.write_bytes(services.audit.entry(3).entry)
    assert _run(tmp_path, str(receipt), "--log-key", key, "--entry", str(entry)).returncode == 8


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ("bad-key", 2),
        ("missing-receipt", 2),
        ("garbage-receipt", 8),
        ("binary-receipt", 8),
    ],
)
def test_mistakes_get_one_line_and_an_exit_status(
    evidence: tuple[Path, Path, str], tmp_path: Path, change: str, status: int
) -> None:
    receipt, entry, key = evidence
    if change == "bad-key":
        key = "not a key"
    elif change == "missing-receipt":
        receipt = tmp_path / "absent"
    elif change == "garbage-receipt":
        receipt.write_text("hello\n", encoding="utf-8")
    else:
        receipt.write_bytes(b"\xff\xfe" * 10)
    result = _run(tmp_path, str(receipt), "--log-key", key, "--entry", str(entry))
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:")
