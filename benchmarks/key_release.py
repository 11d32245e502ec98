"""Grant cost by model size, in process: a 32-file grant against a 1-file grant, v2 and v1.

A 70B model ships 30 or more shards. With envelope v1 every file costs an
HPKE encapsulation; with v2 a grant costs one, and each file an AES-GCM wrap.
This runs the real grant use case in process, as the grant route does
(``GrantService.request_grant_awaiting``: policy, keystore unwrap and sealing
in a worker thread, the durable audit append in SQLite with synchronous=FULL
awaited on the event loop), then validates and serialises the response as
the API does. ``CONCURRENCY`` grants are under way at once, as a serving
process's connections would have them, on ``THREADS`` worker threads, so the
audit log commits them in batches and what is measured is throughput, not
one fsync after another. 1-file and 32-file runs alternate
``ROUNDS`` times and the medians are compared. The process's CPU time per
grant is reported beside it: on a shared machine it moves less with the
neighbours' load than the wall clock does.

This is the per-file cost with nothing around it. The budget on it (DESIGN.md
§5) is on grants as served, in ``grants``, where HTTP's share of every grant
counts as a client sees it.

It also times the key release alone (sealing a grant's file keys, no audit
and no keystore) and the recipient key's low-order check, old and new.
"""

from __future__ import annotations

import base64
import statistics
import tempfile
import time
import timeit
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from benchmarks.common import Result
from gateway.api.app import REQUEST_THREADS
from gateway.api.background import free_port
from gateway.api.schemas import GrantView
from gateway.audit.events import RequestContext
from gateway.bootstrap import Services, build_services
from gateway.config import Settings
from gateway.crypto.envelope import V1, V2, GrantBinding, GrantSealer
from gateway.crypto.keyrelease import has_small_order
from gateway.crypto.keyring import init_keys
from gateway.demo import write_synthetic_model
from gateway.identity.principal import Principal, Role
from gateway.policy.pack import Eccn
from gateway.service import GrantRequest

SHARDS = 32
THREADS = REQUEST_THREADS
CONCURRENCY = 32  # a serving process's share of the grant benchmark's 64 connections
GRANTS_PER_ROUND = 160
ROUNDS = 5
MODEL = "bench/m"
_EXPIRY = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _services(root: Path) -> tuple[Services, list[str]]:
    settings = Settings(
        home=root / "home", keys_dir=root / "keys", url=f"http://127.0.0.1:{free_port()}"
    )
    init_keys(settings.keys_dir)
    services = build_services(settings)
    context = RequestContext(request_id=uuid.uuid4().hex, client_address="bench")
    services.catalog.add_org("bench", name="Bench", hq="DE", parent_hq=None, context=context)
    write_synthetic_model(root / "model", shards=SHARDS, shard_bytes=1 << 14)
    published = services.catalog.publish(
        root / "model",
        model_id=MODEL,
        revision="r1",
        eccn=Eccn.AI_MODEL_WEIGHTS,
        training_ops=None,
        context=context,
    )
    shards = sorted(f.path for f in published if f.path.endswith(".safetensors"))
    return services, shards


@dataclass(frozen=True)
class Round:
    rate: float  # grants a second, wall clock
    cpu_ms: float  # CPU time of the whole process (every thread) per grant


def _grants_per_second(services: Services, files: list[str], envelope: str) -> Round:
    principal = Principal("bench", "bench", "DE", frozenset({Role.ML}), None, "bench")
    recipient = base64.b64encode(
        X25519PrivateKey.generate().public_key().public_bytes_raw()
    ).decode()
    request = GrantRequest(MODEL, "r1", files, recipient, envelopes=(envelope,))

    async def one() -> int:
        context = RequestContext(request_id=uuid.uuid4().hex, client_address="bench")
        issued = await services.grants.request_grant_awaiting(principal, request, context)
        return len(GrantView.model_validate(issued.body).model_dump_json())

    async def round_of_grants() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = THREADS
        limit = anyio.Semaphore(CONCURRENCY)

        async def limited() -> None:
            async with limit:
                await one()

        async with anyio.create_task_group() as grants:
            for _ in range(GRANTS_PER_ROUND):
                grants.start_soon(limited)

    start, cpu = time.perf_counter(), time.process_time()
    anyio.run(round_of_grants)
    return Round(
        GRANTS_PER_ROUND / (time.perf_counter() - start),
        (time.process_time() - cpu) * 1000 / GRANTS_PER_ROUND,
    )


def _key_release_ms(envelope: str, files: int) -> float:
    """Sealing one grant's file keys, nothing else: the part this benchmark is about."""
    recipient = X25519PrivateKey.generate().public_key()
    binding = GrantBinding("g", "bench", MODEL, "r1", _EXPIRY)
    paths = [f"model-{i:05d}-of-{files:05d}.safetensors" for i in range(files)]

    def grant() -> None:
        sealer = GrantSealer(envelope, recipient, binding)
        for path in paths:
            sealer.seal_file_key(bytes(32), path, "0" * 32)

    return min(timeit.repeat(grant, number=50, repeat=5)) / 50 * 1000


def _low_order_check_us() -> tuple[float, float]:
    raw = X25519PrivateKey.generate().public_key().public_bytes_raw()

    def before() -> None:
        X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(raw))

    old = min(timeit.repeat(before, number=2000, repeat=5)) / 2000 * 1e6
    new = min(timeit.repeat(lambda: has_small_order(raw), number=20000, repeat=5)) / 20000 * 1e6
    return old, new


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="wg-bench-keyrelease-") as scratch:
        services, shards = _services(Path(scratch))
        try:
            rounds: dict[tuple[str, int], list[Round]] = {}
            for envelope in (V2, V1):
                _grants_per_second(services, shards, envelope)  # warm up
                for _ in range(ROUNDS):
                    for files in (shards[:1], shards):
                        measured = _grants_per_second(services, files, envelope)
                        rounds.setdefault((envelope, len(files)), []).append(measured)
        finally:
            services.close()
    rates = {key: [r.rate for r in values] for key, values in rounds.items()}
    median = {key: statistics.median(values) for key, values in rates.items()}
    cpu = {key: statistics.median(r.cpu_ms for r in values) for key, values in rounds.items()}
    release_ms = {envelope: _key_release_ms(envelope, SHARDS) for envelope in (V2, V1)}
    results = []
    for envelope in (V2, V1):
        one, many = median[envelope, 1], median[envelope, SHARDS]
        ratio = many / one
        results.append(
            Result(
                f"grants/s in process, {SHARDS}-file / 1-file model, envelope {envelope}",
                ratio,
                "x",
                # The budget is on grants as served (``grants``): without HTTP's
                # share of a grant, this magnifies the per-file cost it shows.
                "none (per-file cost; the budget is served, in grants)",
                True,
                f"{many:.0f}/s vs {one:.0f}/s, {CONCURRENCY} at once on {THREADS} threads, "
                f"medians of {ROUNDS} "
                f"({', '.join(f'{r:.0f}' for r in rates[envelope, SHARDS])} vs "
                f"{', '.join(f'{r:.0f}' for r in rates[envelope, 1])}); CPU a grant "
                f"{cpu[envelope, SHARDS]:.2f} ms vs {cpu[envelope, 1]:.2f} ms, "
                f"{(cpu[envelope, SHARDS] - cpu[envelope, 1]) * 1000 / (SHARDS - 1):.1f} us "
                f"a file; a {SHARDS}-file grant's whole key release alone: "
                f"{release_ms[envelope]:.2f} ms",
            )
        )
    results.append(
        Result(
            f"key release for a {SHARDS}-file grant, v2",
            release_ms[V2],
            "ms",
            "< v1 / 10",
            release_ms[V2] < release_ms[V1] / 10,
            f"v1: {release_ms[V1]:.2f} ms; 1 file, v2: {_key_release_ms(V2, 1):.3f} ms",
        )
    )
    old_us, new_us = _low_order_check_us()
    results.append(
        Result(
            "recipient key low-order check",
            new_us,
            "us",
            "< 5 us",
            new_us < 5,
            f"was {old_us:.0f} us (a key pair and an X25519 exchange)",
        )
    )
    return results
