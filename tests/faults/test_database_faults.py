"""Database faults: PostgreSQL stops accepting connections in the middle of a grant load.

The outage is made the way an operator or a failover makes one: the database
stops allowing connections (``ALTER DATABASE ... ALLOW_CONNECTIONS false``)
and every connection the gateway holds is terminated, mid-transaction for
some. Then connections are allowed again. A grant is only worth its audit
entry: no 201 may leave without a durable ``grant.allow``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text

from tests.conftest import POSTGRES_ADMIN_URL
from tests.faults.support import LivenessWatch, Site, site
from tests.scenarios.deployment import Replica, wait_until

LOAD_CLIENTS = 6
# Each client stops after this many requests, whatever happens: a bounded load.
REQUESTS_PER_CLIENT = 400
OUTAGE_REFUSALS = 20  # refused grants seen before the database comes back
# The outage lasts at least this long: several checkpoint rounds (0.2 s each
# here) and pool reconnects fail, not only the requests in flight at the cut.
OUTAGE_SECONDS = 1.5
AFTER_RECOVERY = 10  # grants issued after it came back


@dataclass
class Outcome:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer
    request_id: str | None
    body: dict[str, Any]


@dataclass
class GrantLoad:
    """``LOAD_CLIENTS`` threads asking for grants back to back until stopped."""

    made: Site
    replica: Replica
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> GrantLoad:
        for number in range(LOAD_CLIENTS):
            thread = threading.Thread(target=self._client, name=f"load-{number}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _client(self) -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(REQUESTS_PER_CLIENT):
                if self._stop.is_set():
                    return
                started = time.monotonic()
                try:
                    response = client.post(
                        f"{self.replica.url}/v1/grants",
                        json=self.made.grant_body(),
                        headers={"Authorization": f"Bearer {self.made.token()}"},
                    )
                    outcome = Outcome(
                        started,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("x-request-id"),
                        response.json(),
                    )
                except httpx.HTTPError:
                    outcome = Outcome(started, time.monotonic(), None, None, {})
                with self._lock:
                    self.outcomes.append(outcome)

    def count(self, status: int, *, started_after: float = 0.0) -> int:
        with self._lock:
            return sum(o.status == status and o.started > started_after for o in self.outcomes)


def _refuse_connections(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )


def _allow_connections(admin: Engine, name: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))


def test_database_refusing_connections_mid_load_never_grants_without_a_durable_entry(
    tmp_path: Path, postgres_url: str
) -> None:
    name = postgres_url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with site(tmp_path, postgres_url) as made:
            replica = made.serve()
            with LivenessWatch(replica.url) as watch, GrantLoad(made, replica) as load:
                wait_until(lambda: load.count(201) >= 10)
                try:
                    _refuse_connections(admin, name)
                    cut = time.monotonic()
                    wait_until(
                        lambda: (
                            load.count(503, started_after=cut) >= OUTAGE_REFUSALS
                            and time.monotonic() - cut >= OUTAGE_SECONDS
                        )
                    )
                finally:
                    _allow_connections(admin, name)
                restored = time.monotonic()
                wait_until(
                    lambda: load.count(201, started_after=restored) >= AFTER_RECOVERY, timeout=30
                )
            watch.assert_answered_throughout(at_least=10)
            # Publication and readiness come back too, without a restart.
            wait_until(lambda: replica.ready() is not None, timeout=30)
            assert replica.process.poll() is None

            outcomes = load.outcomes
            assert {o.status for o in outcomes} <= {201, 503}, {o.status for o in outcomes}
            during = [o for o in outcomes if o.started > cut and o.ended < restored]
            assert len(during) >= OUTAGE_REFUSALS
            assert [o.status for o in during] == [503] * len(during)
            granted = [o.body for o in outcomes if o.status == 201]
            refused = [o.request_id for o in outcomes if o.status == 503 and o.request_id]
            made.assert_log_holds_exactly(granted, refused_requests=refused)
    finally:
        with admin.connect() as connection:  # whatever happened, the fixture can drop it
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
