"""Honest append outcomes: a full queue refuses at once, a 503 never commits, shutdown drains.

Requests awaited on an event loop (the grant route) keep the same promises.

The writer is held up by another connection holding SQLite's write lock, as a
slow disk or a long transaction would; nothing here sleeps.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from gateway.audit import checkpoint
from gateway.audit.sequencer import Sequencer
from gateway.bootstrap import Services
from gateway.errors import Unavailable
from gateway.state.database import writer_sessions
from tests.audit.support import decision_event
from tests.scenarios.deployment import wait_until


@contextmanager
def write_lock_held(services: Services) -> Iterator[None]:
    blocker = sqlite3.connect(services.settings.home / "weightgate.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()


def sequencer(services: Services, *, max_queued: int) -> Sequencer:
    public_key = services.keys.audit_signer.public_key()
    return Sequencer(
        writer_sessions(services.sessions),
        origin=services.audit.origin,
        verify_note=lambda note: checkpoint.verify(note, services.audit.origin, public_key),
        max_queued=max_queued,
    )


def _logged(services: Services) -> list[str]:
    return [row.as_dict()["actor"]["subject"] for row in services.audit.query()]


def test_a_full_queue_refuses_at_once_with_retry_after(services: Services) -> None:
    writer = sequencer(services, max_queued=2)
    with ThreadPoolExecutor(4) as pool, write_lock_held(services):
        started: list[Future[list[int]]] = []
        for number in range(3):  # one in the stuck batch, two filling the queue
            started.append(
                pool.submit(writer.submit, [decision_event(services, number)], None, timeout=30)
            )
            if number == 0:
                wait_until(lambda: writer.committing == 1)  # the batch began
        wait_until(lambda: writer.queued == 2)
        with pytest.raises(Unavailable, match="busy") as refused:
            writer.submit([decision_event(services, 99)], None, timeout=30)
        assert refused.value.detail["retry_after"] == 1
    assert sorted(i for f in started for i in f.result(timeout=30)) == [0, 1, 2]
    writer.close()
    assert "user-99" not in _logged(services)


def test_a_request_answered_503_never_commits_later(services: Services) -> None:
    writer = sequencer(services, max_queued=16)
    with ThreadPoolExecutor(2) as pool, write_lock_held(services):
        first = pool.submit(writer.submit, [decision_event(services, 1)], None, timeout=30)
        wait_until(lambda: writer.committing == 1)  # its batch began
        with pytest.raises(Unavailable, match="did not confirm in time"):
            writer.submit([decision_event(services, 2)], None, timeout=0.05)
    assert first.result(timeout=30) == [0]
    writer.close()  # the writer has passed over everything queued
    assert _logged(services) == ["user-1"]
    assert services.audit.tree_state()[0] == 1


def test_shutdown_commits_what_was_queued_and_refuses_what_comes_after(
    services: Services,
) -> None:
    writer = sequencer(services, max_queued=16)
    with ThreadPoolExecutor(4) as pool, write_lock_held(services):
        futures = [pool.submit(writer.submit, [decision_event(services, 0)], None, timeout=30)]
        wait_until(lambda: writer.committing == 1)  # its batch began, and waits for the lock
        futures += [
            pool.submit(writer.submit, [decision_event(services, n)], None, timeout=30)
            for n in range(1, 4)
        ]
        wait_until(lambda: writer.queued == 3)
        closing = threading.Thread(target=writer.close)
        closing.start()
        wait_until(lambda: writer.closed)
        with pytest.raises(Unavailable, match="shutting down"):
            writer.submit([decision_event(services, 9)], None, timeout=30)
    closing.join(timeout=30)
    outcomes = [f.result(timeout=30) for f in futures]
    assert sorted(i for batch in outcomes for i in batch) == [0, 1, 2, 3]
    assert sorted(_logged(services)) == [f"user-{n}" for n in range(4)]


def test_one_oversized_entry_fails_alone_not_its_whole_batch(pg_services: Services) -> None:
    # An org id longer than its column makes PostgreSQL reject the batch's bulk
    # insert; the writer retries each request alone, so only that one fails.
    services = pg_services
    oversized = {**decision_event(services, 0), "actor": {"subject": "mallory", "org": "o" * 65}}
    barrier = threading.Barrier(8, timeout=30)

    def request(number: int) -> str:
        event = oversized if number == 0 else decision_event(services, number)
        barrier.wait()
        try:
            services.audit.append([event])
        except Unavailable:
            return "refused"
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(request, range(8)))
    assert outcomes == ["refused"] + ["ok"] * 7
    assert sorted(_logged(services)) == sorted(f"user-{n}" for n in range(1, 8))


def test_a_commit_whose_acknowledgement_is_lost_is_reported_as_committed(
    services: Services,
) -> None:
    # The server committed, then the connection died before saying so: the
    # writer looks before answering, so the caller is not told 503 for
    # entries that are in the log.
    sessions = writer_sessions(services.sessions)
    public_key = services.keys.audit_signer.public_key()
    writer = Sequencer(
        sessions,
        origin=services.audit.origin,
        verify_note=lambda note: checkpoint.verify(note, services.audit.origin, public_key),
    )

    def connection_lost(_session: Session) -> None:
        raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection"))

    event.listen(sessions, "after_commit", connection_lost, once=True)
    try:
        assert writer.submit([decision_event(services, 1)], None, timeout=30) == [0]
    finally:
        writer.close()
    assert _logged(services) == ["user-1"]


@contextmanager
def awaiting_behind_a_stuck_batch(
    services: Services, writer: Sequencer
) -> Iterator[BlockingPortal]:
    """An event loop to await requests on, while user-1's batch waits for the write lock."""
    with (
        start_blocking_portal() as portal,
        ThreadPoolExecutor(1) as pool,
        write_lock_held(services),
    ):
        first = pool.submit(writer.submit, [decision_event(services, 1)], None, timeout=30)
        wait_until(lambda: writer.committing == 1)  # its batch began
        yield portal
    assert first.result(timeout=30) == [0]


def test_an_awaited_request_answered_503_never_commits_later(services: Services) -> None:
    writer = sequencer(services, max_queued=16)
    with awaiting_behind_a_stuck_batch(services, writer) as portal:
        late = partial(writer.submit_awaiting, [decision_event(services, 2)], None, timeout=0.05)
        with pytest.raises(Unavailable, match="did not confirm in time"):
            portal.call(late)
    writer.close()
    assert _logged(services) == ["user-1"]


def test_an_awaited_request_whose_task_ends_while_queued_never_commits(
    services: Services,
) -> None:
    writer = sequencer(services, max_queued=16)
    with awaiting_behind_a_stuck_batch(services, writer) as portal:
        queued = portal.start_task_soon(
            partial(writer.submit_awaiting, [decision_event(services, 2)], None, timeout=30)
        )
        wait_until(lambda: writer.queued == 1)
        queued.cancel()  # the request's task is cancelled (a server shutting down)
        with pytest.raises(CancelledError):
            queued.result(timeout=30)
    writer.close()
    assert _logged(services) == ["user-1"]


def test_awaited_requests_commit_in_one_batch_and_learn_their_indices(
    services: Services,
) -> None:
    writer = sequencer(services, max_queued=16)
    with start_blocking_portal() as portal, write_lock_held(services):
        futures = [
            portal.start_task_soon(
                partial(writer.submit_awaiting, [decision_event(services, n)], None, timeout=30)
            )
            for n in range(3)
        ]
        wait_until(lambda: writer.committing + writer.queued == 3)
    indices = sorted(i for f in futures for i in f.result(timeout=30)[0])
    writer.close()
    assert indices == [0, 1, 2]
    assert sorted(_logged(services)) == ["user-0", "user-1", "user-2"]
