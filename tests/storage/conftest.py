"""Storage fixtures: a real S3-compatible server in a subprocess, and both backends behind one name.

moto's server stands in for AWS S3, which cannot run here: it speaks the S3
REST protocol over a real socket, keeps object versions and multipart uploads,
and answers presigned GETs with Range, so the adapter is exercised through the
same botocore stack it uses against AWS. moto does not check signatures or the
expiry of presigned URLs; tests that care about expiry check what was signed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest

from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.bootstrap import Services
from gateway.clock import FixedClock
from gateway.storage.interfaces import BlobStore
from gateway.storage.s3 import S3_MIN_PART_SIZE, S3BlobStore, make_client

MOTO_SERVER = Path(sys.executable).with_name("moto_server")
REGION = "eu-central-1"


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop the server (idempotent): the store becomes unreachable, as in an outage."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def running_moto(startup_timeout: float = 30.0) -> Iterator[MotoServer]:
    """Start ``moto_server`` on a free loopback port and wait until it answers HTTP."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        server = MotoServer(f"http://127.0.0.1:{port}", process)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                try:
                    if httpx.get(f"{server.url}/moto-api/", timeout=1).is_success:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    pytest.fail(f"moto_server did not answer on port {port}:\n{output}")
                time.sleep(0.05)  # poll the listening socket again, up to the deadline
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """One server for the session; each test gets its own bucket."""
    with running_moto() as server:
        yield server


def s3_session() -> Any:
    """A boto3 session whose fake credentials live in the session only, not in os.environ."""
    return boto3.session.Session(
        aws_access_key_id="weightgate-test",
        aws_secret_access_key="weightgate-test-secret",
        region_name=REGION,
    )


def s3_client(endpoint_url: str) -> Any:
    return make_client(endpoint_url=endpoint_url, session=s3_session())


def create_bucket(client: Any, *, versioning: str | None = "Enabled") -> str:
    bucket = f"wg-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioning is not None:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": versioning})
    return bucket


@pytest.fixture
def s3(moto: MotoServer) -> Any:
    """A client of the session's moto server, with the adapter's own configuration."""
    return s3_client(moto.url)


@pytest.fixture
def bucket(s3: Any) -> str:
    return create_bucket(s3)


def make_s3_store(client: Any, bucket: str, clock: FixedClock, prefix: str = "") -> S3BlobStore:
    # The smallest part S3 accepts, so that multipart uploads happen at test sizes.
    return S3BlobStore(
        bucket, prefix, client=client, clock=clock, part_size=S3_MIN_PART_SIZE, concurrency=2
    )


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Backend:
    """A BlobStore under test, the clock it was given, and how to read its URLs' lifetime."""

    name: str
    store: BlobStore
    clock: FixedClock
    url_lifetime: Callable[[str], float]  # seconds from the clock's now until the URL dies


def _s3_lifetime(url: str) -> float:
    # A SigV4 URL is valid for X-Amz-Expires seconds after it was signed.
    return float(query(url)["X-Amz-Expires"])


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, clock: FixedClock) -> Iterator[Backend]:
    """Each BlobStore implementation, reachable over real HTTP, for the contract suite."""
    if request.param == "local":
        # The local store's URLs are served by the gateway itself.
        services: Services = request.getfixturevalue("services")
        port = int(services.settings.url.rsplit(":", 1)[1])
        with serving(create_app(services), "127.0.0.1", port):
            yield Backend(
                "local",
                services.blobs,
                clock,
                lambda url: int(query(url)["exp"]) - clock.now().timestamp(),
            )
    else:
        client = s3_client(request.getfixturevalue("moto").url)
        store = make_s3_store(client, create_bucket(client), clock, prefix="contract")
        yield Backend("s3", store, clock, _s3_lifetime)


def isolate_aws_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, credentials: bool
) -> None:
    """Make the default AWS credential chain see only what a test gives it.

    Used where code under test builds its own client from the environment
    (bootstrap); monkeypatch restores every variable afterwards.
    """
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "weightgate-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "weightgate-test-secret")
