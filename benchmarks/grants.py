"""Grant throughput with a durable audit log, against a bare FastAPI endpoint, same load generator.

Both servers run with the same number of uvicorn worker processes (2, one per
core here), and ``wrk`` (Debian package ``wrk``) drives each with 64
connections for the same time. The grant path does everything a real grant
does: verifies the token, decides, appends to the audit log and commits
durably (SQLite, WAL, synchronous=FULL), unwraps each file key and wraps it
for the client (envelope v2: one HPKE seal a grant), while the checkpoint
publisher signs once a second.

The same load runs against a gateway at a deployment's size: a screening list
of 13,000 parties (about 30,000 names), 1,000 organisations and a 32-file
model. Then the log is aged to 200,000 entries (written straight into the
tables, as ``audit_log`` does) and the same load runs again: a grant must cost the
same whatever the log's age. Last, one connection alone measures a grant's
own latency (p50).
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
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from benchmarks import screening
from benchmarks.audit_log import extend_log
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
# Every server is loaded this long first, unmeasured: pools fill, caches and
# lazily built code paths warm, as they are on any gateway that has been up.
WARM_UP = 3
# Bare and grant runs alternate this many times; the medians are compared, so
# one noisy neighbour on a shared machine does not decide the ratio.
ROUNDS = 3
WORKERS = 2
AGED_ENTRIES = 200_000
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


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float


def _percentile(output: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(url: str, script: Path, *, connections: int = CONNECTIONS, seconds: int = SECONDS) -> Load:
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"{non_2xx.group(1)} requests failed during the run:\n{output}")
    return Load(rps, _percentile(output, "50%"), _percentile(output, "99%"))


@dataclass(frozen=True)
class Bench:
    root: Path
    settings: Settings
    env: dict[str, str]
    script: Path


# The deployment-size set-up: a full screening list, a registry and a sharded model.
DEPLOYMENT_PARTIES = 13_000  # about 30,000 names with their aliases
DEPLOYMENT_ORGS = 1_000
DEPLOYMENT_SHARDS = 32


def _prepare(root: Path, *, deployment: bool = False) -> Bench:
    """A gateway's state and a grant request for wrk: small, or at a deployment's size."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    listed = None
    if deployment:
        listed = screening.write_csv(
            screening.synthetic_parties(DEPLOYMENT_PARTIES), root / "screening.csv"
        )
    settings = Settings(
        home=root / "home",
        keys_dir=root / "keys",
        url=f"http://127.0.0.1:{port}",
        screening_list=listed,
    )
    init_keys(settings.keys_dir, dev_issuer=True)
    services = build_services(settings)
    context = RequestContext(request_id=uuid.uuid4().hex, client_address="bench")
    services.catalog.add_org("bench", name="Bench", hq="DE", parent_hq=None, context=context)
    if deployment:
        strangers = screening.synthetic_parties(DEPLOYMENT_ORGS - 1, seed=29)
        for number, stranger in enumerate(strangers):
            services.catalog.add_org(
                f"org-{number:04d}",
                name=stranger.name,
                hq="DE",
                parent_hq=None,
                aliases=stranger.alt_names[:2],
                context=context,
            )
    shards = DEPLOYMENT_SHARDS if deployment else 2
    write_synthetic_model(root / "model", shards=shards, shard_bytes=1 << 12)
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
        {
            "model": "bench/m",
            "recipient_key": base64.b64encode(bytes(range(1, 33))).decode(),
            "envelopes": ["v2"],
        }
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
    if listed is not None:
        env["WEIGHTGATE_SCREENING_LIST"] = str(listed)
    return Bench(root, settings, env, script)


def _bare(bench: Bench) -> Load:
    port = free_port()
    command = [
        str(BIN / "uvicorn"),
        "bare_app:app",
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--log-level",
        "warning",
    ]
    with _server(command, port, bench.env, bench.root) as url:
        _wrk(f"{url}/v1/grants", bench.script, seconds=WARM_UP)
        return _wrk(f"{url}/v1/grants", bench.script)


def _gateway(bench: Bench, *, connections: int = CONNECTIONS) -> Load:
    port = free_port()
    env = {**bench.env, "WEIGHTGATE_URL": f"http://127.0.0.1:{port}"}
    command = [str(BIN / "weightgate"), "serve", "--port", str(port), "--workers", str(WORKERS)]
    with _server(command, port, env, bench.root) as url:
        _wrk(f"{url}/v1/grants", bench.script, connections=connections, seconds=WARM_UP)
        return _wrk(f"{url}/v1/grants", bench.script, connections=connections)


def _age(bench: Bench, entries: int) -> None:
    services = build_services(bench.settings)
    try:
        extend_log(services, entries)
    finally:
        services.close()


def _median(loads: list[Load]) -> Load:
    """The run with the median throughput (its latencies with it)."""
    return sorted(loads, key=lambda load: load.rps)[len(loads) // 2]


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the grant benchmark needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="wg-bench-grants-") as scratch:
        bench = _prepare(Path(scratch) / "small")
        large = _prepare(Path(scratch) / "deployment", deployment=True)
        bares, freshes, deployed = [], [], []
        for _ in range(ROUNDS):
            bares.append(_bare(bench))
            freshes.append(_gateway(bench))
            deployed.append(_gateway(large))
        bare, fresh, at_size = _median(bares), _median(freshes), _median(deployed)
        alone = _gateway(bench, connections=1)
        _age(bench, AGED_ENTRIES)
        aged = _median([_gateway(bench) for _ in range(ROUNDS)])
    ratio = fresh.rps / bare.rps
    aging = aged.rps / fresh.rps
    sizing = at_size.rps / fresh.rps
    return [
        Result(
            f"grants/s at a deployment's size / small set-up ({DEPLOYMENT_PARTIES:,} listed "
            f"parties, {DEPLOYMENT_ORGS:,} organisations, {DEPLOYMENT_SHARDS}-file model)",
            sizing,
            "x",
            ">= 0.8",
            sizing >= 0.8,
            f"{at_size.rps:.0f}/s vs {fresh.rps:.0f}/s (medians of {ROUNDS}: "
            f"{', '.join(f'{d.rps:.0f}' for d in deployed)}); "
            f"{at_size.rps / bare.rps:.2f}x the bare endpoint",
        ),
        Result(
            f"grants/s / bare FastAPI, {WORKERS} workers each",
            ratio,
            "x",
            ">= 0.5",
            ratio >= 0.5,
            f"{fresh.rps:.0f}/s vs {bare.rps:.0f}/s at {CONNECTIONS} connections (medians of "
            f"{ROUNDS}: {', '.join(f'{g.rps:.0f}' for g in freshes)} vs "
            f"{', '.join(f'{b.rps:.0f}' for b in bares)})",
        ),
        Result(
            "grant p99 / bare p99",
            fresh.p99_ms / bare.p99_ms,
            "x",
            "<= 3",
            fresh.p99_ms <= 3 * bare.p99_ms,
            f"{fresh.p99_ms:.1f} ms vs {bare.p99_ms:.1f} ms",
        ),
        Result(
            "grant p50, one client",
            alone.p50_ms,
            "ms",
            "< 5 ms",
            alone.p50_ms < 5,
            f"{alone.rps:.0f} grants/s on one connection",
        ),
        Result(
            f"grants/s with {AGED_ENTRIES:,} entries / fresh log",
            aging,
            "x",
            ">= 0.9",
            aging >= 0.9,
            f"{aged.rps:.0f}/s vs {fresh.rps:.0f}/s",
        ),
    ]
