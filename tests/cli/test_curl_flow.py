"""The command line against a live gateway: the curl path with `decrypt`, and a killed fetch."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from gateway.bootstrap import Services
from gateway.client.fetch import PART_SUFFIX
from gateway.client.journal import JOURNAL_SUFFIX
from gateway.crypto.fileformat import chunk_offset
from gateway.policy.pack import Eccn
from tests.cli.test_cli import WEIGHTGATE, assert_one_line_error
from tests.conftest import MODEL, mint, operator


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WEIGHTGATE, *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(params=[[], ["--post-quantum"]], ids=["x25519", "hybrid"])
def downloaded(
    request: pytest.FixtureRequest, gateway_url: str, catalog_ready: Services, tmp_path: Path
) -> Path:
    """Do by hand what a curl user does; return the working directory."""
    keygen = _run("keygen", "--out", str(tmp_path / "me.key"), *request.param)
    assert keygen.returncode == 0, keygen.stderr
    assert oct((tmp_path / "me.key").stat().st_mode & 0o777) == "0o600"
    body = {"model": MODEL, **json.loads(keygen.stdout)}
    grant = httpx.post(
        f"{gateway_url}/v1/grants",
        json=body,
        headers={"Authorization": f"Bearer {mint(catalog_ready)}"},
    ).json()
    (tmp_path / "grant.json").write_text(json.dumps(grant))
    for item in grant["files"]:
        response = httpx.get(item["url"], follow_redirects=True)
        assert response.status_code == 200
        (tmp_path / "cipher" / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "cipher" / item["path"]).write_bytes(response.content)
    return tmp_path


def test_decrypt_restores_files_downloaded_with_curl(downloaded: Path, model_dir: Path) -> None:
    result = _run(
        "decrypt",
        str(downloaded / "grant.json"),
        "--key",
        str(downloaded / "me.key"),
        "--in",
        str(downloaded / "cipher"),
        "--out",
        str(downloaded / "plain"),
    )
    assert result.returncode == 0, result.stderr
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, downloaded / "plain" / source.name, shallow=False)


def test_decrypt_refuses_tampered_ciphertext_and_writes_nothing(downloaded: Path) -> None:
    shard = downloaded / "cipher" / "model-00001-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[chunk_offset(2) + 7] ^= 0x80
    shard.write_bytes(bytes(data))
    result = _run(
        "decrypt",
        str(downloaded / "grant.json"),
        "--key",
        str(downloaded / "me.key"),
        "--in",
        str(downloaded / "cipher"),
        "--out",
        str(downloaded / "plain"),
    )
    assert_one_line_error(result, 8, "decryption failed")
    assert not (downloaded / "plain" / shard.name).exists()


def test_decrypt_with_someone_elses_key_fails(downloaded: Path) -> None:
    assert _run("keygen", "--out", str(downloaded / "other.key")).returncode == 0
    result = _run(
        "decrypt",
        str(downloaded / "grant.json"),
        "--key",
        str(downloaded / "other.key"),
        "--in",
        str(downloaded / "cipher"),
        "--out",
        str(downloaded / "plain"),
    )
    assert_one_line_error(result, 8, "does not open")


def test_decrypt_mistakes_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "grant.json").write_text("{}")
    (tmp_path / "me.key").write_text("nope")
    assert_one_line_error(
        _run(
            "decrypt",
            str(tmp_path / "grant.json"),
            "--key",
            str(tmp_path / "me.key"),
            "--in",
            ".",
            "--out",
            "x",
        ),
        2,
        "not a grant",
    )
    assert_one_line_error(_run("keygen", "--out", str(tmp_path / "me.key")), 5, "already exists")


@pytest.mark.usefixtures("gateway_url")
def test_fetch_killed_mid_download_resumes_where_it_stopped(
    catalog_ready: Services, tmp_path: Path
) -> None:
    big = tmp_path / "big"
    big.mkdir()
    (big / "weights.bin").write_bytes(os.urandom(96 << 20))
    catalog_ready.catalog.publish(
        big,
        model_id="acme/big",
        revision="r1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    env = {
        **os.environ,
        "WEIGHTGATE_URL": catalog_ready.settings.url,
        "WEIGHTGATE_TOKEN": mint(catalog_ready),
    }
    command = [WEIGHTGATE, "fetch", "acme/big", "--out", str(tmp_path / "out"), "--workers", "1"]
    journal = tmp_path / "out" / ("weights.bin" + PART_SUFFIX + JOURNAL_SUFFIX)
    victim = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while not (journal.exists() and len(journal.read_text().splitlines()) > 1):
            assert victim.poll() is None, "the fetch finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
    finally:
        victim.wait(timeout=30)
    assert not (tmp_path / "out" / "weights.bin").exists()
    survived = len(journal.read_text().splitlines()) - 1
    resumed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {survived * 8 << 20:,} bytes" in resumed.stdout
    assert filecmp.cmp(big / "weights.bin", tmp_path / "out" / "weights.bin", shallow=False)
