"""Append semantics of the audit log: contiguous indices, atomic changes, fail closed, concurrency.

docs/DESIGN.md invariant 1: nothing leaves the gateway unless its audit entry is
durable, so an append either commits the entries, the caller's change and the
new tree head together, or raises and leaves no trace of any of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from gateway.audit import checkpoint
from gateway.audit.log import AuditLog
from gateway.audit.merkle import CompactRange, leaf_hash
from gateway.bootstrap import Services
from gateway.errors import Conflict, IntegrityError, Unavailable, WeightgateError
from gateway.state.database import make_engine, session_factory
from gateway.state.tables import Organisation, TreeState
from tests.audit.support import (
    append_and_publish,
    decision_event,
    insert_forged,
    rewrite_entry,
    rewrite_head,
    rewrite_nodes,
    rows,
    verify,
)
from tests.conftest import operator


@dataclass(frozen=True)
class Snapshot:
    stored: list[tuple[int, bytes, bytes]]
    head: tuple[int, bytes]
    notes: list[str]
    orgs: list[str]


def snapshot(services: Services) -> Snapshot:
    with services.sessions() as session:
        orgs = list(session.scalars(select(Organisation.id).order_by(Organisation.id)))
    return Snapshot(
        [(r.idx, r.entry, r.leaf_hash) for r in rows(services)],
        services.audit.tree_state(),
        services.audit.checkpoint_notes(),
        orgs,
    )


def append_some(services: Services, count: int) -> None:
    """``count`` single appends, each followed by a publication round (checkpoints 1..count)."""
    for number in range(count):
        append_and_publish(services, [decision_event(services, number)])


def signed_sizes(services: Services) -> list[int]:
    public_key = services.keys.audit_signer.public_key()
    return [
        checkpoint.verify(note, services.audit.origin, public_key).size
        for note in services.audit.checkpoint_notes()
    ]


def sibling_log(services: Services, engine: Engine) -> AuditLog:
    """Another gateway replica's view of the same log: own engine, same key and checkpoints."""
    return AuditLog(
        session_factory(engine),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
    )


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def database_path(services: Services) -> Path:
    return services.settings.home / "weightgate.db"


# Sequencing ----------------------------------------------------------------------


def test_indices_run_from_zero_without_gaps_across_single_and_batch_appends(
    services: Services,
) -> None:
    assert services.audit.append([decision_event(services, 0)]) == [0]
    assert services.audit.append([decision_event(services, n) for n in range(50)]) == list(
        range(1, 51)
    )
    assert services.audit.append([decision_event(services, 51)]) == [51]
    assert services.audit.append([decision_event(services, n) for n in range(3)]) == [52, 53, 54]

    stored = rows(services)
    assert [r.idx for r in stored] == list(range(55))
    for entry in stored:
        assert entry.data()["index"] == entry.idx
        assert entry.data()["origin"] == services.audit.origin
        assert entry.leaf_hash == leaf_hash(entry.entry)

    expected = CompactRange()
    for entry in stored:
        expected.append(leaf_hash(entry.entry))
    assert services.audit.tree_state() == (55, expected.root())
    assert services.audit.latest_checkpoint() is None  # appends sign nothing themselves
    services.publisher.publish()
    latest = services.audit.latest_checkpoint()
    assert latest is not None
    signed = checkpoint.verify(
        latest, services.audit.origin, services.keys.audit_signer.public_key()
    )
    assert (signed.size, signed.root) == (55, expected.root())


def test_event_cannot_choose_its_own_index_or_origin(services: Services) -> None:
    # A caller-supplied "index" or "origin" would let one entry pose as another
    # position or another log; the sequencer's values always win.
    append_some(services, 2)
    smuggled = {**decision_event(services, 7), "index": 0, "origin": "other.example/audit"}
    assert services.audit.append([smuggled]) == [2]
    data = rows(services)[2].data()
    assert data["index"] == 2
    assert data["origin"] == services.audit.origin
    assert verify(services).ok


def test_publisher_signs_the_current_size_only_when_the_tree_grew(services: Services) -> None:
    assert services.publisher.publish() is None  # an empty log has nothing to sign
    for number in range(3):
        services.audit.append([decision_event(services, number)])
    assert signed_sizes(services) == []  # appends move the head, nothing more

    first = services.publisher.publish()
    assert first is not None
    assert first.size == 3
    assert (first.size, first.root) == services.audit.tree_state()
    assert services.publisher.publish() is None  # nothing grew: nothing signed
    assert signed_sizes(services) == [3]

    services.audit.append([decision_event(services, n) for n in range(4)])
    second = services.publisher.publish()
    assert second is not None
    assert (second.size, second.root) == services.audit.tree_state()
    assert signed_sizes(services) == [3, 7]
    assert services.audit.latest_checkpoint() == second.note
    # Every published note is also anchored outside the database, byte for byte.
    anchored = [(a.size, a.note) for a in services.anchors.checkpoints()]
    assert anchored == [(3, first.note), (7, second.note)]


def test_publisher_never_signs_a_forked_history_grown_past_its_last_checkpoint(
    services: Services,
) -> None:
    # docs/AUDIT.md: an attacker with the database rewrites entry 1 and
    # recomputes every leaf, subtree and tree-head row, then grows the log so
    # the head is larger than the signed size 3. The forged head is
    # self-consistent, but no consistency proof leads from the signed root to
    # it, so publication must refuse rather than sign the fork.
    append_some(services, 3)
    notes = services.audit.checkpoint_notes()
    anchored = list(services.anchors.checkpoints())
    rewrite_entry(services, 1, decision={"effect": "allow", "tier": 3, "reasons": []})
    insert_forged(services, 3, decision_event(services, 3, effect="allow"))
    rewrite_nodes(services)
    rewrite_head(services)
    assert services.audit.tree_state()[0] == 4

    with pytest.raises(IntegrityError, match="does not extend size 3"):
        services.publisher.publish()

    assert services.audit.checkpoint_notes() == notes
    assert list(services.anchors.checkpoints()) == anchored
    assert services.publisher.status.failure is not None


def test_change_runs_with_the_indices_being_committed(services: Services) -> None:
    append_some(services, 2)
    seen: list[list[int]] = []

    def change(_session: Session, indices: list[int]) -> None:
        seen.append(list(indices))

    indices = services.audit.append([decision_event(services, n) for n in range(3)], change)
    assert seen == [indices] == [[2, 3, 4]]


# Fail closed ---------------------------------------------------------------------


def _add_org_then(failure: Exception) -> Callable[[Session, list[int]], None]:
    def change(session: Session, _indices: list[int]) -> None:
        session.add(
            Organisation(
                id="ghost",
                name="ghost",
                hq_country="DE",
                parent_hq_country=None,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        session.flush()  # the row really reaches the database before the failure
        raise failure

    return change


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("bug in the caller"), Conflict("organisation exists")],
    ids=["unexpected-error", "domain-error"],
)
def test_change_that_fails_leaves_no_entry_and_no_change(
    services: Services, failure: Exception
) -> None:
    append_some(services, 3)
    before = snapshot(services)

    with pytest.raises(type(failure)):
        services.audit.append([decision_event(services, 99)], _add_org_then(failure))

    assert snapshot(services) == before
    assert "ghost" not in before.orgs
    # No index was burnt: the next append takes the next number.
    assert services.audit.append([decision_event(services, 3)]) == [3]
    assert verify(services).ok


def test_admin_change_the_database_refuses_leaves_no_entry(services: Services) -> None:
    services.catalog.add_org("rhein", name="Rhein", hq="DE", parent_hq=None, context=operator())
    before = snapshot(services)

    def duplicate(session: Session, _indices: list[int]) -> None:
        session.add(
            Organisation(
                id="rhein",
                name="again",
                hq_country="DE",
                parent_hq_country=None,
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )

    with pytest.raises(Unavailable):
        services.audit.append([decision_event(services, 1)], duplicate)
    assert snapshot(services) == before


def test_audit_table_gone_fails_closed(services: Services) -> None:
    append_some(services, 3)
    notes = services.audit.checkpoint_notes()
    with services.engine.begin() as connection:
        connection.execute(text("DROP TABLE audit_entries"))

    with pytest.raises(Unavailable):
        services.audit.append([decision_event(services, 3)])

    assert services.audit.tree_state()[0] == 3
    assert services.audit.checkpoint_notes() == notes


def test_read_only_database_fails_closed(services: Services, engines: list[Engine]) -> None:
    append_some(services, 3)
    before = snapshot(services)
    engines.append(make_engine(f"sqlite:///file:{database_path(services)}?mode=ro&uri=true"))
    read_only = sibling_log(services, engines[-1])
    assert len(list(read_only.entries())) == 3  # it can read; only writing is refused

    with pytest.raises(Unavailable):
        read_only.append([decision_event(services, 3)])

    assert snapshot(services) == before


def test_unreachable_database_fails_closed(
    services: Services, engines: list[Engine], tmp_path: Path
) -> None:
    append_some(services, 1)
    before = snapshot(services)
    engines.append(make_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'weightgate.db'}"))
    unreachable = sibling_log(services, engines[-1])

    with pytest.raises(Unavailable):
        unreachable.append([decision_event(services, 1)])
    with pytest.raises(Unavailable):
        list(unreachable.entries())
    with pytest.raises(Unavailable):
        unreachable.tree_state()

    assert snapshot(services) == before


def test_corrupted_tree_head_is_never_signed_into_a_fork(services: Services) -> None:
    # docs/AUDIT.md: a checkpoint inconsistent with an earlier one is never
    # signed. If the stored frontier no longer matches the stored root (bit rot,
    # or a tamperer), extending it would make the gateway sign a fork of the
    # history it has already signed at size 5.
    append_some(services, 5)
    size, root = services.audit.tree_state()
    assert size == 5
    with services.engine.begin() as connection:
        connection.execute(
            update(TreeState).where(TreeState.id == 1).values(frontier=bytes(32) * 2)
        )
    notes = services.audit.checkpoint_notes()

    with pytest.raises(WeightgateError):
        services.audit.append([decision_event(services, 5)])

    assert services.audit.checkpoint_notes() == notes
    assert services.audit.tree_state() == (5, root)


# Concurrency -----------------------------------------------------------------------

REPLICAS = 6
APPENDS_PER_REPLICA = 5


def test_concurrent_replicas_produce_one_sequence_without_gaps_or_duplicates(
    services: Services, engines: list[Engine]
) -> None:
    # Each replica has its own engine and connection pool, as separate gateway
    # processes would; the barrier releases them all at once.
    logs = [services.audit]
    for _ in range(REPLICAS - 1):
        engines.append(make_engine(services.settings.resolved_database_url()))
        logs.append(sibling_log(services, engines[-1]))
    start = threading.Barrier(REPLICAS, timeout=60)

    def batch_size(number: int, round_: int) -> int:
        return 1 + (number + round_) % 3

    def replica(number: int) -> tuple[list[list[int]], list[int]]:
        log = logs[number]
        start.wait()
        appended, published = [], []
        for round_ in range(APPENDS_PER_REPLICA):
            appended.append(
                log.append([decision_event(services, number)] * batch_size(number, round_))
            )
            if number == 0 and (checkpoint_ := services.publisher.publish()) is not None:
                published.append(checkpoint_.size)
        return appended, published

    with ThreadPoolExecutor(max_workers=REPLICAS) as pool:
        outcomes = [f.result() for f in [pool.submit(replica, n) for n in range(REPLICAS)]]
    results = [appended for appended, _ in outcomes]
    signed = [published for _, published in outcomes]

    batches = [batch for per_replica in results for batch in per_replica]
    total = sum(
        batch_size(number, round_)
        for number in range(REPLICAS)
        for round_ in range(APPENDS_PER_REPLICA)
    )
    every_index = sorted(i for batch in batches for i in batch)
    assert every_index == list(range(total))
    for batch in batches:
        assert batch == list(range(batch[0], batch[0] + len(batch)))  # a batch is contiguous
    assert [r.idx for r in rows(services)] == list(range(total))

    # Publication rounds ran while the replicas appended: every checkpoint
    # they signed must still match the one sequence that resulted.
    published = [size for per_replica in signed for size in per_replica]
    final = services.publisher.publish()
    if final is not None:
        published.append(final.size)
    assert sorted(published) == sorted(set(published))  # no size signed twice
    assert max(published) == total
    assert signed_sizes(services) == sorted(published)

    report = verify(services)
    assert report.ok, report.problems
    assert report.size == total
    assert report.checkpoints == len(published)
    assert report.unsigned == 0
