"""Group commit: many requests in one transaction, each still all-or-nothing on its own."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from gateway.audit.events import build_event
from gateway.audit.log import AuditLog
from gateway.audit.verify import verify_log
from gateway.bootstrap import Services
from gateway.errors import Conflict, Unavailable
from tests.conftest import operator


def _event(services: Services, n: int) -> dict[str, object]:
    return build_event("test.append", time=services.clock.now(), context=operator(), n=n)


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
    logged = {r.as_dict()["n"] for r in services.audit.query()}
    assert logged == {n for n in range(16) if n % 4}
    report = verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )
    assert report.ok, report.problems


def test_an_append_that_is_not_confirmed_in_time_is_unavailable(
    services: Services, tmp_path: Path
) -> None:
    slow = AuditLog(
        services.sessions,
        origin=services.audit.origin,
        signer=services.keys.audit_signer,
        checkpoint_dir=tmp_path / "cp",
        append_timeout=0.2,
    )
    release = threading.Event()

    def stuck(_session: Session, _indices: list[int]) -> None:
        release.wait(timeout=30)

    try:
        with pytest.raises(Unavailable, match="did not confirm in time"):
            slow.append([_event(services, 1)], stuck)
    finally:
        release.set()
        slow.close()
