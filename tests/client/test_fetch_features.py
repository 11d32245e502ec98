"""What ML engineers expect of a download: resume, renewal, selection, space, HF cache, PQ."""

from __future__ import annotations

import filecmp
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from gateway.bootstrap import Services
from gateway.client.fetch import PART_SUFFIX, FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.client.hf_cache import HuggingFaceLayout
from gateway.client.journal import JOURNAL_SUFFIX
from gateway.clock import FixedClock
from gateway.crypto.fileformat import CHUNK_SIZE
from gateway.crypto.keyrelease import HYBRID
from gateway.errors import Gone, InsufficientSpace, NotFound
from tests.conftest import MODEL, REVISION, mint

SHARD = "model-00001-of-00002.safetensors"


class Interrupted(Exception):
    """Stands in for the process being stopped mid-download."""


def _client(services: Services, **claims: Any) -> GatewayClient:
    return GatewayClient(services.settings.url, mint(services, **claims))


@pytest.mark.usefixtures("gateway_url")
def test_interrupted_fetch_resumes_without_downloading_verified_parts_again(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    options = FetchOptions(workers=1, part_chunks=2, include=(SHARD,))
    written = [0]

    def stop_halfway(count: int) -> None:
        written[0] += count
        if written[0] > 150_000:
            raise Interrupted

    with _client(catalog_ready) as client, pytest.raises(Interrupted):
        fetch(client, MODEL, None, out, options, progress=stop_halfway)
    assert not (out / SHARD).exists()
    assert (out / (SHARD + PART_SUFFIX)).exists()
    done = (out / (SHARD + PART_SUFFIX + JOURNAL_SUFFIX)).read_text().splitlines()[1:]
    assert done, "some parts were verified before the interruption"

    reported: list[int] = []
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, None, out, options, progress=reported.append)
    assert item.resumed_bytes == len(done) * 2 * CHUNK_SIZE
    assert filecmp.cmp(model_dir / SHARD, out / SHARD, shallow=False)
    assert not list(out.glob("*" + PART_SUFFIX + "*"))
    # The first report is the verified bytes carried over; every later one is
    # a chunk downloaded and decrypted now: exactly the rest of the file.
    assert reported[0] == item.resumed_bytes
    assert sum(reported[1:]) == item.size - item.resumed_bytes


@pytest.mark.usefixtures("gateway_url")
def test_grant_that_expires_mid_download_is_renewed_and_audited(
    catalog_ready: Services, clock: FixedClock, model_dir: Path, tmp_path: Path
) -> None:
    moved = [False]

    def expire_the_grant(_count: int) -> None:
        if not moved[0]:
            moved[0] = True
            clock.advance(timedelta(minutes=16))  # past the grant and every storage URL

    options = FetchOptions(workers=1, part_chunks=2, include=(SHARD,))
    with _client(catalog_ready) as client:
        [item] = fetch(client, MODEL, None, tmp_path / "out", options, progress=expire_the_grant)
    assert filecmp.cmp(model_dir / SHARD, item.path, shallow=False)
    allowed = catalog_ready.audit.query(event="grant.allow")
    assert len(allowed) == 2, "the renewal was decided and audited like any grant"


@pytest.mark.usefixtures("gateway_url")
def test_revoked_grant_is_not_renewed(catalog_ready: Services, tmp_path: Path) -> None:
    token = mint(catalog_ready)

    def revoke(grant: dict[str, Any]) -> None:
        response = httpx.delete(
            f"{catalog_ready.settings.url}/v1/grants/{grant['id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200

    with (
        GatewayClient(catalog_ready.settings.url, token) as client,
        pytest.raises(Gone, match="revoked"),
    ):
        fetch(client, MODEL, None, tmp_path / "out", on_grant=revoke)
    assert len(catalog_ready.audit.query(event="grant.allow")) == 1


@pytest.mark.usefixtures("gateway_url")
def test_include_and_exclude_select_files_at_the_gateway(
    catalog_ready: Services, tmp_path: Path
) -> None:
    options = FetchOptions(include=("*.safetensors",), exclude=("model-00002-*",))
    with _client(catalog_ready) as client:
        files = fetch(client, MODEL, None, tmp_path / "out", options)
    assert [f.path.name for f in files] == [SHARD]
    [grant] = catalog_ready.audit.query(event="grant.allow")
    assert grant.as_dict()["files"] == [SHARD], "the grant covers only what was fetched"
    with _client(catalog_ready) as client, pytest.raises(NotFound, match="matches"):
        fetch(client, MODEL, None, tmp_path / "none", FetchOptions(include=("*.bin",)))


@pytest.mark.usefixtures("gateway_url")
def test_not_enough_disk_space_is_said_before_downloading(
    catalog_ready: Services, tmp_path: Path
) -> None:
    options = FetchOptions(disk_free=lambda _path: 1000)
    with _client(catalog_ready) as client, pytest.raises(InsufficientSpace, match="free"):
        fetch(client, MODEL, None, tmp_path / "out", options)
    assert catalog_ready.audit.query(event="download.redirect") == []


@pytest.mark.usefixtures("gateway_url")
def test_hugging_face_cache_layout_loads_offline(
    catalog_ready: Services, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "hf"
    options = FetchOptions(layout=lambda m, r: HuggingFaceLayout(cache, m, r))
    with _client(catalog_ready) as client:
        fetch(client, MODEL, None, cache, options)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = Path(
        snapshot_download(MODEL, revision=REVISION, cache_dir=cache, local_files_only=True)
    )
    for source in model_dir.iterdir():
        assert filecmp.cmp(source, snapshot / source.name, shallow=False)
    config = hf_hub_download(MODEL, "config.json", cache_dir=cache, local_files_only=True)
    assert Path(config).read_text() == (model_dir / "config.json").read_text()


@pytest.mark.usefixtures("gateway_url")
def test_post_quantum_key_release_end_to_end(
    catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    grants: list[dict[str, Any]] = []
    with _client(catalog_ready) as client:
        files = fetch(
            client, MODEL, None, tmp_path / "out", FetchOptions(kem=HYBRID), on_grant=grants.append
        )
    assert "ML-KEM-768" in grants[0]["key_wrapping"]
    assert all(filecmp.cmp(model_dir / f.path.name, f.path, shallow=False) for f in files)
