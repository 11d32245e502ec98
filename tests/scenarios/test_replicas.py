"""Several gateway processes, one database, one log: killed replicas, switches, migrations.

Each test runs real ``weightgate serve`` processes on loopback against SQLite
(a shared file) and PostgreSQL (a fresh database on 127.0.0.1:5432).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.api.server import BACKLOG
from gateway.bootstrap import build_services
from gateway.clock import SystemClock
from gateway.context.policy_source import POLICY_REFRESH
from gateway.state.database import make_engine
from tests.scenarios.deployment import Deployment, Replica, deployment, wait_until

CONCURRENT_GRANTS = 300
# The publisher is killed once it has answered this many of the ~100 requests sent
# to it: counted on the victim alone, so whichever replica is fastest, the kill
# lands while most of the victim's requests are still open.
KILL_AFTER = 10
IN_FLIGHT = 8  # requests open at once on each replica
AFTER_RESTART = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def site(tmp_path: Path, database_url: str | None) -> Iterator[Deployment]:
    with deployment(tmp_path, database_url) as made:
        yield made


@dataclass
class Outcome:
    token: str
    replica: int
    status: int | None  # None: the connection failed (the replica was killed)
    request_id: str | None
    body: dict[str, Any]


async def _grant(client: httpx.AsyncClient, site: Deployment, replica: Replica, token: str) -> Any:
    return await client.post(
        f"{replica.url}/v1/grants",
        json=site.grant_body(),
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


async def _load(site: Deployment, victim: Replica) -> list[Outcome]:
    """300 grants over three replicas, 8 open on each; SIGKILL ``victim`` after it answered 10.

    A request whose connection fails is retried once, with the same one-time
    token, on the next replica: what a client with a retry policy does, and
    what would let a token be used twice if replicas did not share state.
    """
    outcomes: list[Outcome] = []
    answered = asyncio.Event()
    limits = httpx.Limits(max_connections=CONCURRENT_GRANTS)
    # A few requests in flight per replica at a time: a replica sent all its
    # requests at once commits them in one batch, and a kill after its first
    # answers would find nothing left to cut off.
    gates = [asyncio.Semaphore(IN_FLIGHT) for _ in site.replicas]
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(number: int) -> None:
            token = site.token()
            for attempt in range(2):
                position = (number + attempt) % len(site.replicas)
                replica = site.replicas[position]
                try:
                    async with gates[position]:
                        response = await _grant(client, site, replica, token)
                except httpx.TransportError:
                    outcomes.append(Outcome(token, position, None, None, {}))
                    continue
                outcomes.append(
                    Outcome(
                        token,
                        position,
                        response.status_code,
                        response.headers.get("x-request-id"),
                        response.json(),
                    )
                )
                if replica is victim and (
                    sum(o.status is not None and o.replica == position for o in outcomes)
                    >= KILL_AFTER
                ):
                    answered.set()
                return

        async def killer() -> None:
            # A victim that never answers ten is killed anyway; the assertions say why.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), timeout=120)
            victim.kill()

        await asyncio.gather(killer(), *(one(n) for n in range(CONCURRENT_GRANTS)))
    return outcomes


def _publisher(site: Deployment) -> Replica:
    wait_until(
        lambda: any((r.ready() or {}).get("checkpoints") == "publishing" for r in site.replicas)
    )
    return next(r for r in site.replicas if (r.ready() or {}).get("checkpoints") == "publishing")


def test_killing_a_replica_mid_load_loses_nothing_and_duplicates_nothing(
    site: Deployment,
) -> None:
    for _ in range(3):
        site.start()
    wait_until(lambda: all(r.ready() for r in site.replicas))
    victim = _publisher(site)

    outcomes = asyncio.run(_load(site, victim))

    # The killed replica comes back on its port, and every replica serves.
    revived = site.start(victim.port)
    wait_until(lambda: revived.ready() is not None)
    for _ in range(AFTER_RESTART):
        response = httpx.post(
            f"{revived.url}/v1/grants",
            json=site.grant_body(),
            headers={"Authorization": f"Bearer {site.token()}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
    # Checkpoints carry on under another publisher and cover the whole log.
    survivors = [r for r in site.replicas if r.process.poll() is None]
    wait_until(lambda: any((r.ready() or {}).get("checkpoints") == "publishing" for r in survivors))
    served = site.tree_size()
    wait_until(lambda: _checkpoint_size(survivors[0]) >= served)
    for replica in survivors:
        replica.stop()
        # SIGTERM shuts down cleanly: the audit writer drained, services closed.
        assert "Application shutdown complete" in replica.said()
    size = site.tree_size()  # shutdown may add the summaries of refused tokens

    services = build_services(site.settings(), SystemClock())
    try:
        entries = [row.as_dict() for row in services.audit.entries()]
    finally:
        services.close()
    assert [e["index"] for e in entries] == list(range(size))
    granted = [o for o in outcomes if o.status == 201]
    refused = [o for o in outcomes if o.status == 503]
    assert len(granted) >= CONCURRENT_GRANTS // 2
    assert any(o.status is None for o in outcomes), "the kill cut no request off"
    assert {o.status for o in outcomes} <= {201, 401, 503, None}
    # Every grant a client received is in the log, as the grant it received.
    for outcome in granted:
        entry = entries[outcome.body["audit_index"]]
        assert entry["event"] == "grant.allow"
        assert entry["grant_id"] == outcome.body["id"]
    # No request answered 503 committed afterwards.
    logged_requests = {e["request_id"] for e in entries}
    assert not [o for o in refused if o.request_id in logged_requests]
    # No one-time token was accepted twice, by one replica or two.
    tokens = [e["actor"]["token"] for e in entries if e["event"] == "grant.allow"]
    assert len(tokens) == len(set(tokens))
    # A request cut off with its replica may have committed unseen; none went missing.
    assert len(tokens) >= len(granted) + AFTER_RESTART

    verified = site.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok: {size} entries" in verified.stdout


def _checkpoint_size(replica: Replica) -> int:
    response = httpx.get(f"{replica.url}/v1/audit/checkpoint", timeout=5)
    return int(response.text.split("\n")[1]) if response.status_code == 200 else -1


def test_a_policy_switch_through_one_replica_binds_the_others_within_the_bound(
    site: Deployment,
) -> None:
    first, second = site.start(), site.start()
    wait_until(lambda: first.ready() is not None and second.ready() is not None)
    allowed = httpx.post(
        f"{second.url}/v1/grants",
        json=site.grant_body(),
        headers={"Authorization": f"Bearer {site.token()}"},
    )
    assert allowed.status_code == 201, allowed.text

    switched = httpx.post(
        f"{first.url}/v1/policy/reload",
        json={"pack": "no-germany"},
        headers={"Authorization": f"Bearer {site.token(subject='root', roles=('admin',))}"},
    )
    assert switched.status_code == 200, switched.text
    # The documented bound itself is what is waited out here: after it, no
    # replica may still decide under the old pack.
    time.sleep(POLICY_REFRESH.total_seconds())
    denied = httpx.post(
        f"{second.url}/v1/grants",
        json=site.grant_body(),
        headers={"Authorization": f"Bearer {site.token()}"},
    )
    assert denied.status_code == 403, denied.text
    assert denied.json()["policy"] == "no-germany"

    # A replica started later, still configured with the default pack, enforces
    # what is in force and says so.
    third = site.start()
    wait_until(lambda: third.ready() is not None)
    also_denied = httpx.post(
        f"{third.url}/v1/grants",
        json=site.grant_body(),
        headers={"Authorization": f"Bearer {site.token()}"},
    )
    assert also_denied.status_code == 403
    third.stop()
    assert "every replica enforces no-germany" in third.said()


MIGRATE = (
    "import sys; from gateway.state.database import make_engine, migrate; "
    "migrate(make_engine(sys.argv[1]))"
)


def test_replicas_starting_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path, database_url: str | None
) -> None:
    url = database_url or f"sqlite:///{tmp_path / 'fresh.db'}"
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, url], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        for _ in range(4)
    ]
    errors = [process.communicate(timeout=120)[1].decode() for process in starting]
    assert [process.returncode for process in starting] == [0, 0, 0, 0], errors
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            heads = connection.execute(text("SELECT count(*) FROM tree_state")).scalar()
    finally:
        engine.dispose()
    assert len(versions) == 1
    assert heads == 1


QUOTA = 5
RACING = 40


def test_replicas_racing_at_a_quota_edge_let_exactly_the_quota_through(
    site: Deployment,
) -> None:
    for _ in range(3):
        site.start()
    wait_until(lambda: all(r.ready() for r in site.replicas))
    admin = {"Authorization": f"Bearer {site.token(subject='root', roles=('admin',))}"}
    quota = httpx.put(
        f"{site.replicas[0].url}/v1/quotas/org/rhein",
        json={"grants_per_hour": QUOTA},
        headers=admin,
    )
    assert quota.status_code == 200, quota.text

    async def race() -> list[int]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=RACING)) as client:
            responses = await asyncio.gather(
                *(_grant(client, site, site.replicas[n % 3], site.token()) for n in range(RACING))
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(race())
    assert statuses.count(201) == QUOTA, statuses
    assert statuses.count(429) == RACING - QUOTA, statuses


def test_serve_with_workers_runs_that_many_processes_on_one_log(site: Deployment) -> None:
    server = site.start(workers=2)
    wait_until(lambda: server.ready() is not None)

    async def burst() -> list[int]:
        async with httpx.AsyncClient() as client:
            responses = await asyncio.gather(
                *(_grant(client, site, server, site.token()) for _ in range(40))
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [201] * 40
    # Workers listen so as to take one connection per wakeup (so that one
    # cannot take a whole burst); the supervisor gives the socket back its full queue.
    wait_until(lambda: _listen_backlog(server.port) == BACKLOG)
    wait_until(lambda: _checkpoint_size(server) == site.tree_size())
    server.stop()
    size = site.tree_size()
    said = server.said()
    workers = set(re.findall(r"Started server process \[(\d+)\]", said))
    assert len(workers) == 2, said
    assert said.count("Application shutdown complete") == 2
    verified = site.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok: {size} entries" in verified.stdout


def _listen_backlog(port: int) -> int | None:
    """The accept queue's length of the socket listening on ``port``, as ``ss`` reports it."""
    listed = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(listed[2]) if listed else None
