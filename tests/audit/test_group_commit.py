"""Group commit: many requests in one transaction, each still all-or-nothing on its own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy.orm import Session

from gateway.audit.events import build_event
from gateway.audit.log import AuditLog
from gateway.audit.verify import verify_log
from gateway.bootstrap import Services
from gateway.errors import Conflict, Unavailable
from tests.conftest import operator


def _event(services: Services, n: int) -> dict[str, object]:
    return build_event("quota.set", time=services.clock.now(), context=operator(), quota={"n": n})


def test_a_failing_change_fails_only_its_own_request(services: Services) -> None:
    start = threading.Barrier(16, timeout=30)

    def request(n: int) -> list[int] | str:
        def change(_session: Session, _indices: list[int]) -> None:
            if n % 4 == 0:
                raise Conflict(f"request {n} conflicts")

        start.wait()
        try:
            return services.audit.append([_event(services, n)] * 2, change)
        except Conflict as refused:
            return refused.message

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(request, range(16)))
    refused = [o for o in outcomes if isinstance(o, str)]
    accepted = [o for o in outcomes if isinstance(o, list)]
    assert len(refused) == 4 and len(accepted) == 12
    indices = sorted(i for batch in accepted for i in batch)
    assert indices == list(range(24)), "refused requests left no gap and no entry"
    logged = {r.as_dict()["quota"]["n"] for r in services.audit.query()}
    assert logged == {n for n in range(16) if n % 4}
    published = services.publisher.publish()
    assert published is not None and published.size == 24
    report = verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )
    assert report.ok, report.problems
    assert (report.size, report.checkpoints, report.unsigned) == (24, 1, 0)


def test_an_append_not_started_in_time_is_unavailable_and_never_commits(
    services: Services,
) -> None:
    # A caller told 503 must be able to rely on it: the request that timed out
    # in the queue is cancelled, so it cannot commit later, when the writer
    # gets to it, behind the caller's back.
    slow = AuditLog(
        services.sessions,
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        append_timeout=0.2,
    )
    entered, release = threading.Event(), threading.Event()
    late_change_ran = threading.Event()

    def stuck(_session: Session, _indices: list[int]) -> None:
        entered.set()
        release.wait(timeout=30)

    def late_change(_session: Session, _indices: list[int]) -> None:
        late_change_ran.set()

    try:
        with ThreadPoolExecutor(1) as pool:
            # The first request's batch starts and holds the writer; having
            # started, it is waited for, however long it takes.
            first = pool.submit(slow.append, [_event(services, 1)], stuck)
            assert entered.wait(timeout=30)
            with pytest.raises(Unavailable, match="did not confirm in time") as refused:
                slow.append([_event(services, 2)], late_change)
            assert refused.value.detail["retry_after"] >= 1
            release.set()
            assert first.result(timeout=30) == [0]
        # Queued after the refused request, so once this is durable the
        # writer has already passed (and dropped) it.
        assert slow.append([_event(services, 3)]) == [1]
    finally:
        release.set()
        slow.close()

    assert not late_change_ran.is_set()
    assert [r.as_dict()["quota"]["n"] for r in services.audit.query()] == [1, 3]
    assert services.audit.tree_state()[0] == 2
