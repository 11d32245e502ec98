"""Grant throughput with a durable audit log, against a bare FastAPI endpoint, same load generator.

Both servers run with the same number of uvicorn worker processes (2, one per
core here), and ``wrk`` (Debian package ``wrk``) drives each with 64
connections for the same time. The grant path does everything a real grant
does: verifies the token, decides, appends to the audit log and commits
durably (SQLite, WAL, synchronous=FULL), unwraps each file key and wraps it
for the client (envelope v2: one HPKE seal a grant), while the checkpoint
publisher signs once a second.

The same load runs against a gateway at a deployment's size: a screening list
of 13,000 parties (about 30,000 names), 1,000 organisations, a 32-file model
and a 1-file one. Then its log is aged to 200,000 entries (written straight
into the tables, as ``audit_log`` does) and the load runs again, against a
bare endpoint measured anew beside it, for both models: a grant must cost
the same whatever the log's age, and a 32-file grant little more than a
1-file one. Last, one connection alone measures a grant's own latency (p50)
at that size.
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
ROUNDS = 5
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
    script: Path  # a grant of the whole model
    one_file_script: Path | None = None  # at a deployment's size: a grant of a 1-file model


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
    models = {"bench/m": shards, "bench/one": 1} if deployment else {"bench/m": shards}
    for model_id, files in models.items():
        directory = root / model_id.replace("/", "-")
        write_synthetic_model(directory, shards=files, shard_bytes=1 << 12)
        if deployment:  # shards only: exactly 32 files and 1
            (directory / "config.json").unlink()
        services.catalog.publish(
            directory,
            model_id=model_id,
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
        ttl=timedelta(hours=2),
    )
    services.close()
    scripts = {
        model_id: _script(root / f"{model_id.replace('/', '-')}.lua", model_id, token)
        for model_id in models
    }
    (root / "bare_app.py").write_text(_BARE_APP)
    env = {
        **os.environ,
        "WEIGHTGATE_HOME": str(settings.home),
        "WEIGHTGATE_KEYS_DIR": str(settings.keys_dir),
        "WEIGHTGATE_URL": settings.url,
    }
    if listed is not None:
        env["WEIGHTGATE_SCREENING_LIST"] = str(listed)
    return Bench(root, settings, env, scripts["bench/m"], scripts.get("bench/one"))


def _script(path: Path, model_id: str, token: str) -> Path:
    """A wrk script that asks for the whole of ``model_id``, envelope v2."""
    body = json.dumps(
        {
            "model": model_id,
            "recipient_key": base64.b64encode(bytes(range(1, 33))).decode(),
            "envelopes": ["v2"],
        }
    )
    path.write_text(_LUA.format(body=body, token=token))
    return path


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


def _gateway(bench: Bench, *, connections: int = CONNECTIONS, script: Path | None = None) -> Load:
    port = free_port()
    env = {**bench.env, "WEIGHTGATE_URL": f"http://127.0.0.1:{port}"}
    command = [str(BIN / "weightgate"), "serve", "--port", str(port), "--workers", str(WORKERS)]
    script = script or bench.script
    with _server(command, port, env, bench.root) as url:
        _wrk(f"{url}/v1/grants", script, connections=connections, seconds=WARM_UP)
        return _wrk(f"{url}/v1/grants", script, connections=connections)


def _age(bench: Bench, entries: int) -> None:
    services = build_services(bench.settings)
    try:
        extend_log(services, entries)
    finally:
        services.close()


def _copy(bench: Bench, root: Path) -> Bench:
    """The same gateway state in another directory (the same keys, so the same token works)."""
    shutil.copytree(bench.root, root)

    def moved(path: Path) -> Path:
        return root / path.relative_to(bench.root)

    listed = bench.settings.screening_list
    settings = bench.settings.model_copy(
        update={
            "home": moved(bench.settings.home),
            "keys_dir": moved(bench.settings.keys_dir),
            "screening_list": listed and moved(listed),
        }
    )
    env = {
        name: str(moved(Path(value))) if value.startswith(str(bench.root)) else value
        for name, value in bench.env.items()
    }
    one_file = bench.one_file_script and moved(bench.one_file_script)
    return Bench(root, settings, env, moved(bench.script), one_file)


def _median(loads: list[Load]) -> Load:
    """The run with the median throughput (its latencies with it)."""
    return sorted(loads, key=lambda load: load.rps)[len(loads) // 2]


def _rates(loads: list[Load]) -> str:
    return ", ".join(f"{load.rps:.0f}" for load in loads)


def run() -> list[Result]:
    if shutil.which("wrk") is None:
        raise RuntimeError("the grant benchmark needs wrk (apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="wg-bench-grants-") as scratch:
        small = _prepare(Path(scratch) / "small")
        large = _prepare(Path(scratch) / "deployment", deployment=True)
        aged_large = _copy(large, Path(scratch) / "deployment-aged")
        assert aged_large.one_file_script is not None
        _age(aged_large, AGED_ENTRIES)
        # Every set-up in every round, so a neighbour's load falls on them all alike.
        bares, freshes, large_freshes, ageds, aged_ones = [], [], [], [], []
        for _ in range(ROUNDS):
            bares.append(_bare(small))
            freshes.append(_gateway(small))
            large_freshes.append(_gateway(large))
            ageds.append(_gateway(aged_large))
            aged_ones.append(_gateway(aged_large, script=aged_large.one_file_script))
        alone = _gateway(aged_large, connections=1)
    bare, fresh, large_fresh = _median(bares), _median(freshes), _median(large_freshes)
    aged, aged_one = _median(ageds), _median(aged_ones)
    ratio = fresh.rps / bare.rps
    at_size = aged.rps / bare.rps
    by_files = aged.rps / aged_one.rps
    aging = aged.rps / large_fresh.rps
    sizing = large_fresh.rps / fresh.rps
    size = (
        f"{DEPLOYMENT_PARTIES:,} listed parties, {DEPLOYMENT_ORGS:,} organisations, "
        f"{AGED_ENTRIES:,} log entries"
    )
    return [
        Result(
            f"grants/s / bare FastAPI, {WORKERS} workers each, small set-up",
            ratio,
            "x",
            ">= 0.5",
            ratio >= 0.5,
            f"{fresh.rps:.0f}/s vs {bare.rps:.0f}/s at {CONNECTIONS} connections (medians of "
            f"{ROUNDS}: {_rates(freshes)} vs {_rates(bares)})",
        ),
        Result(
            "grant p99 / bare p99, small set-up",
            fresh.p99_ms / bare.p99_ms,
            "x",
            "<= 3",
            fresh.p99_ms <= 3 * bare.p99_ms,
            f"{fresh.p99_ms:.1f} ms vs {bare.p99_ms:.1f} ms",
        ),
        Result(
            f"grants/s at a deployment's size / small set-up, fresh logs "
            f"({DEPLOYMENT_PARTIES:,} listed parties, {DEPLOYMENT_ORGS:,} organisations, "
            f"{DEPLOYMENT_SHARDS}-file model)",
            sizing,
            "x",
            ">= 0.8",
            sizing >= 0.8,
            f"{large_fresh.rps:.0f}/s vs {fresh.rps:.0f}/s (medians of {ROUNDS}: "
            f"{_rates(large_freshes)})",
        ),
        Result(
            f"grants/s at a deployment's size / bare FastAPI ({size}, "
            f"{DEPLOYMENT_SHARDS}-file model)",
            at_size,
            "x",
            ">= 0.5",
            at_size >= 0.5,
            f"{aged.rps:.0f}/s vs {bare.rps:.0f}/s (medians of {ROUNDS}: {_rates(ageds)} "
            f"vs {_rates(bares)}); p99 {aged.p99_ms:.0f} ms vs {bare.p99_ms:.0f} ms",
        ),
        Result(
            f"grants/s at a deployment's size, {DEPLOYMENT_SHARDS}-file / 1-file model",
            by_files,
            "x",
            ">= 0.8",
            by_files >= 0.8,
            f"{aged.rps:.0f}/s vs {aged_one.rps:.0f}/s (medians of {ROUNDS}: {_rates(ageds)} "
            f"vs {_rates(aged_ones)})",
        ),
        Result(
            f"grants/s with {AGED_ENTRIES:,} entries / fresh log, at a deployment's size",
            aging,
            "x",
            ">= 0.9",
            aging >= 0.9,
            f"{aged.rps:.0f}/s vs {large_fresh.rps:.0f}/s (fresh, medians of {ROUNDS}: "
            f"{_rates(large_freshes)})",
        ),
        Result(
            f"grant p50, one client, at a deployment's size ({DEPLOYMENT_SHARDS}-file model)",
            alone.p50_ms,
            "ms",
            "< 5 ms",
            alone.p50_ms < 5,
            f"{alone.rps:.0f} grants/s on one connection",
        ),
    ]
