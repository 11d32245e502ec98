"""``fetch`` end to end against a running gateway: decrypt, verify, write atomically, stay small."""

from __future__ import annotations

import filecmp
import os
import tracemalloc
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.bootstrap import Services
from gateway.client.fetch import PART_SUFFIX, FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.crypto.fileformat import chunk_offset
from gateway.errors import Gone, IntegrityError, PolicyDenied
from gateway.policy.pack import Eccn
from gateway.state.tables import ModelFile
from tests.conftest import MODEL, mint, operator


def _client(url: str, services: Services, **claims: Any) -> GatewayClient:
    return GatewayClient(url, mint(services, **claims))


def test_fetch_writes_verified_copies_of_every_file(
    gateway_url: str, catalog_ready: Services, model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with _client(gateway_url, catalog_ready) as client:
        files = fetch(client, MODEL, None, out, FetchOptions(part_chunks=4))
    assert sorted(f.path.name for f in files) == sorted(p.name for p in model_dir.iterdir())
    for item in files:
        assert filecmp.cmp(model_dir / item.path.name, item.path, shallow=False)
    assert not list(out.rglob("*" + PART_SUFFIX))


def test_denied_fetch_writes_nothing(
    gateway_url: str, catalog_ready: Services, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with (
        _client(gateway_url, catalog_ready, org="deccan", country="IN") as client,
        pytest.raises(PolicyDenied) as denied,
    ):
        fetch(client, MODEL, None, out)
    assert denied.value.detail["decision"]["tier"] == 2
    assert not out.exists()


def _stored_blob(services: Services, path: str) -> Path:
    with services.sessions() as session:
        row = session.query(ModelFile).filter_by(path=path).one()
        return services.settings.home / "blobs" / row.object_key / row.object_version


def test_ciphertext_tampered_in_storage_is_detected_and_never_written(
    gateway_url: str, catalog_ready: Services, tmp_path: Path
) -> None:
    name = "model-00001-of-00002.safetensors"
    blob = _stored_blob(catalog_ready, name)
    data = bytearray(blob.read_bytes())
    data[chunk_offset(3) + 100] ^= 0x01
    blob.write_bytes(bytes(data))
    out = tmp_path / "out"
    with _client(gateway_url, catalog_ready) as client, pytest.raises(IntegrityError):
        fetch(client, MODEL, None, out, FetchOptions(part_chunks=2))
    assert not (out / name).exists()


def test_grant_revoked_before_download_stops_the_fetch(
    gateway_url: str, catalog_ready: Services, tmp_path: Path
) -> None:
    token = mint(catalog_ready)

    def revoke(grant: dict[str, Any]) -> None:
        response = httpx.delete(
            f"{gateway_url}/v1/grants/{grant['id']}", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200

    with GatewayClient(gateway_url, token) as client, pytest.raises(Gone):
        fetch(client, MODEL, None, tmp_path / "out", on_grant=revoke)


def test_fetch_memory_stays_flat_for_a_model_many_times_the_buffer(
    catalog_ready: Services, gateway_url: str, tmp_path: Path
) -> None:
    size = 48 << 20
    source = tmp_path / "big"
    source.mkdir()
    with (source / "weights.safetensors").open("wb") as handle:
        for _ in range(size >> 20):
            handle.write(os.urandom(1 << 20))
    catalog_ready.catalog.publish(
        source,
        model_id="acme/big",
        revision="r1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=operator(),
    )
    with _client(gateway_url, catalog_ready) as client:
        tracemalloc.start()
        try:
            [item] = fetch(
                client, "acme/big", None, tmp_path / "out", FetchOptions(workers=4, part_chunks=64)
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert item.size == size
    # Four 1 MiB parts in flight, each held as ciphertext and as plaintext
    # chunks, plus the in-process server's buffers: about 8 MiB whatever the
    # model's size (96 MiB measures the same), so a third of 48 MiB is ample.
    assert peak < 16 << 20, f"peak {peak:,} bytes for a {size:,}-byte model"
