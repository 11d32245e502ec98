"""Grant throughput with a durable audit log, against a bare FastAPI endpoint, same load generator.

Both servers run as their own process with one uvicorn worker, and ``wrk``
(Debian package ``wrk``) drives each with 64 connections for the same time.
The grant path does everything a real grant does: verifies the token,
decides, appends to the audit log and commits durably (SQLite, WAL,
synchronous=FULL), unwraps and re-seals three file keys.
"""

from __future__ import annotations

import base64
import json
import os
import re
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

import httpx

from benchmarks.common import Result
from gateway.api.background import free_port
from gateway.audit.events import RequestContext
from gateway.bootstrap import build_services
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.demo import write_synthetic_model
from gateway.identity import dev_issuer
from gateway.identity.principal import Role
from gateway.policy.pack import Eccn

CONNECTIONS = 64
SECONDS = 10
BIN = Path(sys.executable).parent
_BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel
app = FastAPI()
class Body(BaseModel):
    model: str
    recipient_key: str
@app.post("/v1/grants", status_code=201)
def grant(body: Body) -> dict[str, str]:
    return {"id": "bare", "model": body.model}
"""
_LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


@contextmanager
def _server(command: list[str], port: int, env: dict[str, str], cwd: Path) -> Iterator[str]:
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{url}/docs", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {command}") from None
            time.sleep(0.05)
    try:
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wrk(url: str, script: Path) -> tuple[float, float]:
    """Requests per second and p99 latency in milliseconds."""
    output = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} requests failed during the run:\n{output}")
    return rps, float(value) * scale


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the grant benchmark needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="wg-bench-grants-") as scratch:
        root = Path(scratch)
        port = free_port()
        settings = Settings(
            home=root / "home", keys_dir=root / "keys", url=f"http://127.0.0.1:{port}"
        )
        init_keys(settings.keys_dir)
        services = build_services(settings)
        context = RequestContext(request_id=uuid.uuid4().hex, client_address="bench")
        services.catalog.add_org("bench", name="Bench", hq="DE", parent_hq=None, context=context)
        write_synthetic_model(root / "model", shards=2, shard_bytes=1 << 16)
        services.catalog.publish(
            root / "model",
            model_id="bench/m",
            revision="r1",
            eccn=Eccn.AI_MODEL_WEIGHTS,
            training_ops=None,
            context=context,
        )
        token = dev_issuer.mint(
            settings.keys_dir,
            services.clock,
            subject="bench",
            org="bench",
            country="DE",
            roles=[Role.ML],
            ttl=timedelta(hours=1),
        )
        services.close()
        body = json.dumps(
            {"model": "bench/m", "recipient_key": base64.b64encode(bytes(range(1, 33))).decode()}
        )
        script = root / "grant.lua"
        script.write_text(_LUA.format(body=body, token=token))
        (root / "bare_app.py").write_text(_BARE_APP)
        env = {
            **os.environ,
            "WEIGHTGATE_HOME": str(settings.home),
            "WEIGHTGATE_KEYS_DIR": str(settings.keys_dir),
            "WEIGHTGATE_URL": settings.url,
        }
        bare_port = free_port()
        with _server(
            [
                str(BIN / "uvicorn"),
                "bare_app:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
            ],
            bare_port,
            env,
            root,
        ) as url:
            bare_rps, bare_p99 = _wrk(f"{url}/v1/grants", script)
        with _server(
            [str(BIN / "weightgate"), "serve", "--port", str(port)], port, env, root
        ) as url:
            grant_rps, grant_p99 = _wrk(f"{url}/v1/grants", script)
    ratio = grant_rps / bare_rps
    return [
        Result(
            "grants/s / bare FastAPI",
            ratio,
            "x",
            ">= 0.4",
            ratio >= 0.4,
            f"{grant_rps:.0f}/s vs {bare_rps:.0f}/s at {CONNECTIONS} connections",
        ),
        Result(
            "grant p99 latency",
            grant_p99,
            "ms",
            "< 25 ms",
            grant_p99 < 25,
            f"bare p99 {bare_p99:.1f} ms",
        ),
    ]
