"""`audit witness-key`: the key stays with the witness; the operator gets a witnesses entry."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.bootstrap import load_witnesses
from tests.cli.test_cli import assert_one_line_error, run


def test_witness_key_prints_an_entry_the_gateway_loads_and_keeps_the_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "witness.pem"
    first = run(env, "audit", "witness-key", str(key), "--name", "sec")
    assert first.returncode == 0, first.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    witnesses = tmp_path / "witnesses.json"
    witnesses.write_text(first.stdout)
    assert list(load_witnesses(witnesses)) == ["sec"]
    # Run again: the same key, never a new one over it.
    again = run(env, "audit", "witness-key", str(key), "--name", "sec")
    assert json.loads(again.stdout) == json.loads(first.stdout)


def test_witness_key_refuses_a_name_a_signed_note_cannot_carry(
    env: dict[str, str], tmp_path: Path
) -> None:
    for name in ("two words", "a+b", "bell\a"):
        result = run(env, "audit", "witness-key", str(tmp_path / "w.pem"), "--name", name)
        assert_one_line_error(result, 2, "--name")
    assert not (tmp_path / "w.pem").exists()
