"""``weightgate fetch`` from an S3 server against boto3 ``download_file`` of the same bytes.

Both read from one ``moto_server`` (standing in for S3, which cannot run here)
on loopback, in the same run: the baseline downloads the plaintext shards with
boto3's transfer manager, then ``weightgate fetch`` (the real CLI, in its own
process) downloads, decrypts and verifies the encrypted shards through a
gateway. The figures are the throughput ratio and the fetch process's peak RSS.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import boto3
import httpx
from boto3.s3.transfer import TransferConfig

from benchmarks.common import Result
from gateway.api.app import create_app
from gateway.api.background import free_port, serving
from gateway.audit.events import RequestContext
from gateway.bootstrap import build_services
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from gateway.policy.pack import Eccn

BIN = Path(sys.executable).parent
SHARD = 512 << 20
MODEL = "bench/big"
ROUNDS = 2


@contextmanager
def moto() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1).is_success:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moto_server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        process.kill()
        process.wait()


def _write_model(directory: Path, size: int) -> list[Path]:
    directory.mkdir(parents=True)
    shards: list[Path] = []
    remaining = size
    while remaining > 0:
        shard = directory / f"model-{len(shards) + 1:05d}.safetensors"
        with shard.open("wb") as out:
            left = min(SHARD, remaining)
            while left > 0:
                block = os.urandom(min(16 << 20, left))
                out.write(block)
                left -= len(block)
        remaining -= min(SHARD, remaining)
        shards.append(shard)
    return shards


# A process spawned from this (large) benchmark process would inherit its peak
# RSS in the kernel's accounting, so a small Python process starts the fetch
# and reports the peak of that one child alone.
_MEASURE = (
    "import resource, subprocess, sys;"
    "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def _run_measured(command: list[str], env: dict[str, str]) -> int:
    """Run ``command``; return its peak RSS in bytes."""
    output = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(output.strip()) * 1024


def run(size: int) -> list[Result]:
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1"
    )
    with moto() as s3_url, tempfile.TemporaryDirectory(prefix="wg-bench-") as scratch:
        root = Path(scratch)
        s3 = boto3.client("s3", endpoint_url=s3_url)
        s3.create_bucket(Bucket="bench")
        s3.put_bucket_versioning(Bucket="bench", VersioningConfiguration={"Status": "Enabled"})
        shards = _write_model(root / "model", size)
        port = free_port()
        settings = Settings(
            home=root / "home",
            keys_dir=root / "keys",
            url=f"http://127.0.0.1:{port}",
            storage="s3://bench/weights",
            s3_endpoint_url=s3_url,
        )
        init_keys(settings.keys_dir, dev_issuer=True)
        services = build_services(settings)
        context = RequestContext(request_id=uuid.uuid4().hex, client_address="bench")
        services.catalog.add_org("bench", name="Bench", hq="DE", parent_hq=None, context=context)
        services.catalog.publish(
            root / "model",
            model_id=MODEL,
            revision="r1",
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=context,
        )
        for shard in shards:
            s3.upload_file(str(shard), "bench", f"plain/{shard.name}")
        token = dev_issuer.mint(
            settings.keys_dir,
            services.clock,
            subject="bench",
            org="bench",
            country="DE",
            roles=[Role.ML],
            ttl=timedelta(hours=1),
        )
        config = TransferConfig(max_concurrency=8, multipart_chunksize=8 << 20)
        plain_rates: list[float] = []
        fetch_rates: list[float] = []
        rss: list[int] = []
        with serving(create_app(services), "127.0.0.1", port):
            for attempt in range(ROUNDS):
                start = time.perf_counter()
                for shard in shards:
                    s3.download_file(
                        "bench", f"plain/{shard.name}", str(root / f"p-{shard.name}"), Config=config
                    )
                plain_rates.append(size / (time.perf_counter() - start))
                for shard in shards:
                    (root / f"p-{shard.name}").unlink()
                out = root / f"fetched-{attempt}"
                start = time.perf_counter()
                rss.append(
                    _run_measured(
                        [
                            str(BIN / "weightgate"),
                            "fetch",
                            MODEL,
                            "--out",
                            str(out),
                            "--workers",
                            "8",
                        ],
                        {**os.environ, "WEIGHTGATE_URL": settings.url, "WEIGHTGATE_TOKEN": token},
                    )
                )
                fetch_rates.append(size / (time.perf_counter() - start))
                shutil.rmtree(out)  # the files and the .weightgate/ record beside them
        services.close()
    peak_rss = max(rss)
    ratio = max(fetch_rates) / max(plain_rates)
    mib = size >> 20
    return [
        Result(
            f"fetch / boto3 download_file ({mib} MiB)",
            ratio,
            "x",
            ">= 0.85",
            ratio >= 0.85,
            f"{max(fetch_rates) / 1e6:.0f} MB/s vs {max(plain_rates) / 1e6:.0f} MB/s",
        ),
        Result(
            f"fetch peak RSS ({mib} MiB model)",
            peak_rss / (1 << 20),
            "MiB",
            "< 256 MiB",
            peak_rss < 256 << 20,
        ),
    ]
