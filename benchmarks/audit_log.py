"""The audit log at scale: verify a million entries, prove at ten million, append under load.

The logs are built directly in the gateway's own schema (one migrated SQLite
database, the same leaf and node hashing as the sequencer), so the figures
measure verification and proofs, not how long it takes to fill a log through
the API.
"""

from __future__ import annotations

import random
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import Result
from gateway.audit import proofs
from gateway.audit.events import RequestContext, build_event
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.audit.verify import verify_log
from gateway.bootstrap import Services, build_services
from gateway.config import Settings
from gateway.crypto.keyring import init_keys

VERIFY_ENTRIES = 1_000_000
PROOF_ENTRIES = 10_000_000


def _extend(services: Services, tree: CompactRange, count: int) -> None:
    """Append ``count`` entries straight into the tables, as the sequencer would."""
    database = services.settings.home / "weightgate.db"
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA synchronous=OFF")  # building the fixture, not measuring it
    origin = services.audit.origin
    entries: list[tuple[object, ...]] = []
    nodes: list[tuple[int, int, bytes]] = []
    for _ in range(count):
        index = tree.size
        # Canonical JSON written out by hand (keys in order): building ten
        # million entries through json.dumps would take longer than the test.
        entry = (
            f'{{"actor":{{"org":"bench","subject":"user-{index % 1000}"}},'
            f'"event":"grant.allow","index":{index},"origin":"{origin}",'
            f'"time":"2026-03-02T09:00:00+00:00"}}'
        ).encode()
        leaf = leaf_hash(entry)
        nodes.extend((level, node, digest) for level, node, digest in tree.append(leaf) if level)
        entries.append(
            (
                index,
                entry,
                leaf,
                "grant.allow",
                f"user-{index % 1000}",
                "bench",
                "2026-03-02 09:00:00.000000",
            )
        )
        if len(entries) >= 100_000:
            _flush(connection, entries, nodes)
    _flush(connection, entries, nodes)
    connection.execute(
        "UPDATE tree_state SET size=?, root=?, frontier=? WHERE id=1",
        (tree.size, tree.root(), tree.to_bytes()),
    )
    connection.commit()
    connection.close()
    # One publication round signs (and anchors) the new head, after proving it
    # consistent with the previous checkpoint, as the serving publisher would.
    published = services.publisher.publish()
    if published is None or published.size != tree.size:
        raise RuntimeError(f"the publisher did not sign the benchmark log at size {tree.size}")


def extend_log(services: Services, count: int) -> None:
    """Age the log by ``count`` entries after its current head, then sign the new head."""
    _extend(services, CompactRange.from_bytes(*_head(services)), count)


def _flush(
    connection: sqlite3.Connection,
    entries: list[tuple[object, ...]],
    nodes: list[tuple[int, int, bytes]],
) -> None:
    connection.executemany(
        "INSERT INTO audit_entries (idx, entry, leaf_hash, event, subject, org_id, time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        entries,
    )
    connection.executemany("INSERT INTO merkle_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    entries.clear()
    nodes.clear()


def _verify_seconds(services: Services) -> float:
    audit = services.audit
    start = time.perf_counter()
    report = verify_log(
        audit.entries(),
        origin=audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=audit.checkpoint_notes(),
        state=audit.tree_state(),
        workers=2,
    )
    seconds = time.perf_counter() - start
    if not report.ok:
        raise RuntimeError(f"the benchmark log does not verify: {report.problems[:1]}")
    return seconds


def _proof_millis(services: Services, size: int, rounds: int = 300) -> tuple[float, float]:
    picker = random.Random(7)  # noqa: S311 - choosing indices, not secrets
    samples = []
    root = services.audit.tree_state()[1]
    for _ in range(rounds):
        index = picker.randrange(size)
        start = time.perf_counter()
        leaf, path = services.audit.inclusion_proof(index, size)
        samples.append((time.perf_counter() - start) * 1000)
        proofs.verify_inclusion(leaf, index, size, path, root)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def _append_rate(services: Services, threads: int = 64, seconds: float = 3.0) -> float:
    stop = time.monotonic() + seconds
    done = [0]
    lock = threading.Lock()
    context = RequestContext(request_id="bench", client_address="bench")

    def writer() -> None:
        while time.monotonic() < stop:
            services.audit.append(
                [build_event("quota.set", time=services.clock.now(), context=context, quota={})]
            )
            with lock:
                done[0] += 1

    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(writer) for _ in range(threads)]:
            future.result()
    return done[0] / seconds


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="wg-bench-audit-") as scratch:
        root = Path(scratch)
        settings = Settings(home=root / "home", keys_dir=root / "keys")
        init_keys(settings.keys_dir)
        services = build_services(settings)
        appends = _append_rate(services)
        tree = CompactRange.from_bytes(*_head(services))
        _extend(services, tree, VERIFY_ENTRIES - tree.size)
        verify = _verify_seconds(services)
        _extend(services, tree, PROOF_ENTRIES - tree.size)
        median, p99 = _proof_millis(services, tree.size)
        services.close()
    return [
        Result("durable appends/s, 64 writers, group commit", appends, "/s", "reported", True),
        Result(f"audit verify, {VERIFY_ENTRIES:,} entries", verify, "s", "< 10 s", verify < 10),
        Result(
            f"inclusion proof at {PROOF_ENTRIES:,} entries (p99)",
            p99,
            "ms",
            "< 5 ms",
            p99 < 5,
            f"median {median:.2f} ms",
        ),
    ]


def _head(services: Services) -> tuple[int, bytes]:
    size, _ = services.audit.tree_state()
    connection = sqlite3.connect(services.settings.home / "weightgate.db")
    frontier = connection.execute("SELECT frontier FROM tree_state WHERE id=1").fetchone()[0]
    connection.close()
    return size, bytes(frontier)
