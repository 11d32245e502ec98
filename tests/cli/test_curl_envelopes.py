"""The curl path and envelope v2: a grant JSON edited after the gateway wrote it does not decrypt.

Each attack edits the saved grant the way someone holding two grants (or one
grant and a text editor) could, then runs ``weightgate decrypt``: it must stop
with the integrity exit status (8), one line, and write nothing.
"""

from __future__ import annotations

import filecmp
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bootstrap import Services
from tests.cli.test_cli import WEIGHTGATE, assert_one_line_error
from tests.conftest import MODEL, mint

SHARD_1 = "model-00001-of-00002.safetensors"
SHARD_2 = "model-00002-of-00002.safetensors"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def _request_grant(gateway_url: str, services: Services, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{gateway_url}/v1/grants",
        json={"model": MODEL, **body},
        headers={"Authorization": f"Bearer {mint(services)}"},
    )
    assert response.status_code == 201, response.text
    grant: dict[str, Any] = response.json()
    return grant


def _download(grant: dict[str, Any], into: Path) -> None:
    for item in grant["files"]:
        response = httpx.get(item["url"], follow_redirects=True)
        assert response.status_code == 200
        (into / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (into / item["path"]).write_bytes(response.content)


def _decrypt(work: Path, grant: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    (work / "grant.json").write_text(json.dumps(grant))
    return _run(
        "decrypt",
        str(work / "grant.json"),
        "--key",
        str(work / "me.key"),
        "--in",
        str(work / "cipher"),
        "--out",
        str(work / "plain"),
    )


@pytest.fixture
def keygen_body(tmp_path: Path) -> dict[str, Any]:
    keygen = _run("keygen", "--out", str(tmp_path / "me.key"))
    assert keygen.returncode == 0, keygen.stderr
    body: dict[str, Any] = json.loads(keygen.stdout)
    return body


def test_keygen_asks_for_v2_and_decrypt_opens_it(
    gateway_url: str,
    catalog_ready: Services,
    tmp_path: Path,
    keygen_body: dict[str, Any],
    model_dir: Path,
) -> None:
    assert keygen_body["envelopes"] == ["v2"]
    grant = _request_grant(gateway_url, catalog_ready, keygen_body)
    assert grant["envelope"] == "v2"
    _download(grant, tmp_path / "cipher")
    result = _decrypt(tmp_path, grant)
    assert result.returncode == 0, result.stderr
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, tmp_path / "plain" / source.name, shallow=False)


def test_grant_requested_the_old_way_still_decrypts(
    gateway_url: str,
    catalog_ready: Services,
    tmp_path: Path,
    keygen_body: dict[str, Any],
    model_dir: Path,
) -> None:
    # A script written before v2: recipient_key and recipient_kem, nothing else.
    del keygen_body["envelopes"]
    grant = _request_grant(gateway_url, catalog_ready, keygen_body)
    assert grant["envelope"] == "v1"
    _download(grant, tmp_path / "cipher")
    # A grant saved by a gateway older than the envelope field has neither field.
    del grant["envelope"], grant["grant_key"]
    result = _decrypt(tmp_path, grant)
    assert result.returncode == 0, result.stderr
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, tmp_path / "plain" / source.name, shallow=False)


def _entry(grant: dict[str, Any], path: str) -> dict[str, Any]:
    [entry] = [f for f in grant["files"] if f["path"] == path]
    found: dict[str, Any] = entry
    return found


def _swap_wrapped_keys(grant: dict[str, Any], _other: dict[str, Any]) -> None:
    one, two = _entry(grant, SHARD_1), _entry(grant, SHARD_2)
    one["wrapped_key"], two["wrapped_key"] = two["wrapped_key"], one["wrapped_key"]


def _wrapped_key_from_another_grant(grant: dict[str, Any], other: dict[str, Any]) -> None:
    _entry(grant, SHARD_1)["wrapped_key"] = _entry(other, SHARD_1)["wrapped_key"]


def _grant_key_from_another_grant(grant: dict[str, Any], other: dict[str, Any]) -> None:
    grant["grant_key"] = other["grant_key"]


def _file_entry_moved_to_another_path(grant: dict[str, Any], _other: dict[str, Any]) -> None:
    _entry(grant, SHARD_1)["path"] = "renamed.safetensors"


def _file_version_changed(grant: dict[str, Any], _other: dict[str, Any]) -> None:
    _entry(grant, SHARD_1)["file_version"] = _entry(grant, SHARD_2)["file_version"]


def _expiry_extended(grant: dict[str, Any], _other: dict[str, Any]) -> None:
    grant["expires_at"] = "2099-01-01T00:00:00+00:00"


def _downgraded_to_v1(grant: dict[str, Any], _other: dict[str, Any]) -> None:
    grant["envelope"] = "v1"


@pytest.mark.parametrize(
    "attack",
    [
        _swap_wrapped_keys,
        _wrapped_key_from_another_grant,
        _grant_key_from_another_grant,
        _file_entry_moved_to_another_path,
        _file_version_changed,
        _expiry_extended,
        _downgraded_to_v1,
    ],
    ids=lambda attack: attack.__name__.strip("_").replace("_", "-"),
)
def test_edited_v2_grant_is_refused_with_an_integrity_error(
    gateway_url: str,
    catalog_ready: Services,
    tmp_path: Path,
    keygen_body: dict[str, Any],
    attack: Callable[[dict[str, Any], dict[str, Any]], None],
) -> None:
    grant = _request_grant(gateway_url, catalog_ready, keygen_body)
    other = _request_grant(gateway_url, catalog_ready, keygen_body)  # same key, same requester
    _download(grant, tmp_path / "cipher")
    (tmp_path / "cipher" / "renamed.safetensors").write_bytes(
        (tmp_path / "cipher" / SHARD_1).read_bytes()
    )
    attack(grant, other)
    assert_one_line_error(_decrypt(tmp_path, grant), 8, "does not open")
    assert not (tmp_path / "plain").exists() or not any((tmp_path / "plain").iterdir())
