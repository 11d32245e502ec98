"""The whole gateway on S3: publish, grant, redirect, ranged fetch, revoke, outage.

The gateway is built by ``bootstrap`` from ``WEIGHTGATE_STORAGE=s3://...`` as
in production, served over HTTP, and fetched from by the real client; moto
stands in for S3 (see conftest).
"""

from __future__ import annotations

import base64
import filecmp
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gateway.api.app import create_app
from gateway.api.background import serving
from gateway.bootstrap import Services, build_services
from gateway.client.fetch import FetchOptions, fetch
from gateway.client.gateway_api import GatewayClient
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.policy.pack import Eccn
from gateway.storage.s3 import S3BlobStore
from tests.conftest import MODEL, REVISION, mint, operator
from tests.storage.conftest import (
    MotoServer,
    create_bucket,
    isolate_aws_environment,
    query,
    running_moto,
    s3_client,
)

PREFIX = "weights/prod"
# Written all through the plaintext: finding it in storage means plaintext got there.
CANARY = b"WEIGHTGATE-PLAINTEXT-CANARY-5d0c9e"


@pytest.fixture
def canary_model(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    directory.mkdir()
    for name, blocks in (
        ("model-00001-of-00002.safetensors", 40),
        ("model-00002-of-00002.safetensors", 9),
    ):
        with (directory / name).open("wb") as out:
            for _ in range(blocks):
                out.write(CANARY * 256 + os.urandom(8192))
    (directory / "config.json").write_text(json.dumps({"canary": CANARY.decode()}))
    return directory


@dataclass
class S3Gateway:
    services: Services
    url: str
    bucket: str
    s3: Any  # a client of the same store, to look behind the gateway's back


@contextmanager
def s3_gateway(
    server: MotoServer, settings: Settings, clock: FixedClock, model_dir: Path
) -> Iterator[S3Gateway]:
    """A gateway on ``s3://BUCKET/weights/prod``, one org (rhein, DE) and one 4E091 model."""
    s3 = s3_client(server.url)
    bucket = create_bucket(s3)
    configured = settings.model_copy(
        update={"storage": f"s3://{bucket}/{PREFIX}", "s3_endpoint_url": server.url}
    )
    init_keys(configured.keys_dir, dev_issuer=True)
    services = build_services(configured, clock)
    try:
        assert isinstance(services.blobs, S3BlobStore)
        services.catalog.add_org("rhein", name="Rhein", hq="DE", parent_hq=None, context=operator())
        services.catalog.publish(
            model_dir,
            model_id=MODEL,
            revision=REVISION,
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=operator(),
        )
        port = int(configured.url.rsplit(":", 1)[1])
        with serving(create_app(services), "127.0.0.1", port) as url:
            yield S3Gateway(services, url, bucket, s3)
    finally:
        services.close()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # bootstrap builds its client from the default AWS chain, as in production.
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)


@pytest.fixture
def gateway(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    moto: MotoServer,
    settings: Settings,
    clock: FixedClock,
    canary_model: Path,
) -> Iterator[S3Gateway]:
    isolate_aws_environment(monkeypatch, tmp_path, credentials=True)
    with s3_gateway(moto, settings, clock, canary_model) as running:
        yield running


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _grant(gateway: S3Gateway, token: str) -> dict[str, Any]:
    recipient = X25519PrivateKey.generate().public_key().public_bytes_raw()
    response = httpx.post(
        f"{gateway.url}/v1/grants",
        json={"model": MODEL, "recipient_key": base64.b64encode(recipient).decode()},
        headers=_auth(token),
    )
    assert response.status_code == 201, response.text
    grant: dict[str, Any] = response.json()
    return grant


def test_fetch_from_s3_returns_identical_files(
    gateway: S3Gateway, canary_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with GatewayClient(gateway.url, mint(gateway.services)) as client:
        files = fetch(client, MODEL, None, out, FetchOptions(part_chunks=4))
    assert sorted(f.path.name for f in files) == sorted(p.name for p in canary_model.iterdir())
    for item in files:
        assert filecmp.cmp(canary_model / item.path.name, item.path, shallow=False)


def test_no_stored_object_ever_holds_plaintext(gateway: S3Gateway, canary_model: Path) -> None:
    # Every version of every object, and any multipart upload left half done:
    # the store (and whoever can read the bucket) only ever sees ciphertext.
    assert all(CANARY in p.read_bytes() for p in canary_model.iterdir())
    versions = [
        version
        for page in gateway.s3.get_paginator("list_object_versions").paginate(Bucket=gateway.bucket)
        for version in page.get("Versions", [])
    ]
    assert len(versions) == len(list(canary_model.iterdir()))
    for version in versions:
        assert version["Key"].startswith(f"{PREFIX}/objects/")
        body = gateway.s3.get_object(
            Bucket=gateway.bucket, Key=version["Key"], VersionId=version["VersionId"]
        )["Body"].read()
        assert CANARY not in body, f"plaintext in {version['Key']}"
    assert "Uploads" not in gateway.s3.list_multipart_uploads(Bucket=gateway.bucket)


def test_redirect_is_a_presigned_url_pinned_to_the_published_version(
    gateway: S3Gateway,
) -> None:
    grant = _grant(gateway, mint(gateway.services))
    item = next(f for f in grant["files"] if f["path"].startswith("model-00001"))
    redirect = httpx.get(item["url"])
    assert redirect.status_code == 307
    location = redirect.headers["location"]
    [row] = [r for r in gateway.services.catalog.files(MODEL, REVISION) if r.path == item["path"]]
    assert location.startswith(f"{gateway.services.settings.s3_endpoint_url}/{gateway.bucket}/")
    assert f"/{PREFIX}/{row.object_key}?" in location
    params = query(location)
    assert params["versionId"] == row.object_version
    assert 1 <= int(params["X-Amz-Expires"]) <= 60
    ranged = httpx.get(location, headers={"Range": "bytes=0-55"})
    assert ranged.status_code == 206
    assert ranged.content == base64.b64decode(item["header"])


def test_file_url_replayed_after_revocation_is_gone(gateway: S3Gateway) -> None:
    token = mint(gateway.services)
    grant = _grant(gateway, token)
    file_url = grant["files"][0]["url"]
    assert httpx.get(file_url).status_code == 307
    revoked = httpx.delete(f"{gateway.url}/v1/grants/{grant['id']}", headers=_auth(token))
    assert revoked.status_code == 200
    assert httpx.get(file_url).status_code == 410


@pytest.mark.usefixtures("aws_env")
def test_store_outage_turns_redirects_into_503_not_dead_links(
    settings: Settings, clock: FixedClock, canary_model: Path
) -> None:
    with running_moto() as server, s3_gateway(server, settings, clock, canary_model) as gateway:
        token = mint(gateway.services)
        assert httpx.get(f"{gateway.url}/readyz").status_code == 200
        server.stop()
        # Issuing a grant reads only the catalog and keys, so it still succeeds;
        # the redirect must then fail closed instead of pointing at a dead store.
        grant = _grant(gateway, token)
        redirect = httpx.get(grant["files"][0]["url"], timeout=30)
        assert redirect.status_code == 503
        assert redirect.headers["content-type"].startswith("application/problem+json")
        assert "location" not in redirect.headers
        # Anyone holding a file URL sees this answer: it names no endpoint,
        # bucket, object key or version (the gateway's log has those).
        stored = gateway.services.catalog.files(MODEL, REVISION)[0]
        for secret in (server.url, gateway.bucket, stored.object_key, stored.object_version):
            assert secret not in redirect.text
        ready = httpx.get(f"{gateway.url}/readyz", timeout=30)
        assert ready.status_code == 503
