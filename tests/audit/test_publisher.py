"""Checkpoint publication off the append path: one publisher, consistent heads, loud failures."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text, update

from gateway.audit import checkpoint
from gateway.audit.anchors import DirectoryAnchors
from gateway.audit.leadership import AdvisoryLockLeadership, FileLockLeadership
from gateway.bootstrap import STALE_CHECKPOINT_SECONDS, Services, build_services
from gateway.clock import FixedClock
from gateway.config import Settings
from gateway.crypto.keyring import init_keys
from gateway.errors import IntegrityError, NotYetCovered, Unavailable
from gateway.state.database import make_engine, migrate
from gateway.state.tables import TreeState
from tests.audit.support import decision_event


def _failures(stage: str) -> float:
    value = REGISTRY.get_sample_value(
        "weightgate_checkpoint_publish_failures_total", {"stage": stage}
    )
    return value or 0.0


def test_appends_sign_nothing_and_the_publisher_signs_the_grown_tree_once(
    services: Services,
) -> None:
    for number in range(5):
        services.audit.append([decision_event(services, number)])
    assert services.audit.checkpoint_notes() == []
    published = services.publisher.publish()
    assert published is not None and published.size == 5
    assert services.publisher.publish() is None  # nothing grew: nothing signed
    signed = checkpoint.verify(
        services.audit.latest_checkpoint() or "",
        services.audit.origin,
        services.keys.audit_signer.public_key(),
    )
    assert (signed.size, signed.root) == services.audit.tree_state()
    anchored = list(services.anchors.checkpoints())
    assert [(a.size, a.note) for a in anchored] == [(5, published.note)]


def test_a_receipt_waits_for_the_checkpoint_and_says_so(services: Services) -> None:
    services.audit.append([decision_event(services, 0)])
    with pytest.raises(NotYetCovered) as waiting:
        services.audit.receipt_material(0)
    assert waiting.value.detail["retry_after"] >= 1
    services.publisher.publish()
    note, leaf, path = services.audit.receipt_material(0)
    assert note == services.audit.latest_checkpoint() and len(leaf) == 32 and path == []


def test_head_rewritten_below_the_last_checkpoint_is_never_signed(services: Services) -> None:
    # An attacker with the database rewinds the tree head to an earlier size;
    # signing it would publish a fork of what witnesses already saw.
    for number in range(4):
        services.audit.append([decision_event(services, number)])
    services.publisher.publish()
    with services.sessions.begin() as session:
        session.execute(update(TreeState).values(size=2))
    before = _failures("integrity")
    with pytest.raises(IntegrityError, match="contradicts"):
        services.publisher.publish()
    assert _failures("integrity") == before + 1
    assert [n.count("\n") for n in services.audit.checkpoint_notes()] == [5]
    assert services.publisher.status.failure is not None


def test_an_unwritable_anchor_store_stops_publication_loudly(
    services: Services, tmp_path: Path
) -> None:
    blocked = tmp_path / "anchor-is-a-file"
    blocked.write_text("not a directory")
    services.publisher._anchors = DirectoryAnchors(blocked)  # the store breaks
    services.audit.append([decision_event(services, 0)])
    before = _failures("anchor")
    with pytest.raises(Unavailable, match="cannot anchor"):
        services.publisher.publish()
    assert _failures("anchor") == before + 1
    # Nothing unanchored reaches the database, and readiness says why.
    assert services.audit.checkpoint_notes() == []
    with pytest.raises(Unavailable, match="checkpoint publication is failing: anchor"):
        services.check_ready()
    # Appends carry on meanwhile (grants wait for durability, not checkpoints).
    assert services.audit.append([decision_event(services, 1)]) == [1]

    services.publisher._anchors = services.anchors  # repaired
    published = services.publisher.publish()
    assert published is not None and published.size == 2
    assert services.check_ready()["checkpoints"] == "publishing"


def test_readiness_fails_when_entries_wait_too_long_for_a_checkpoint(
    services: Services, clock: FixedClock
) -> None:
    # Another replica holds the publisher role and has stopped publishing.
    services.audit.append([decision_event(services, 0)])
    clock.advance(services.publisher.lag() + _stale(services))
    with pytest.raises(Unavailable, match="stalled"):
        services.check_ready()
    services.publisher.publish()
    assert services.check_ready()["checkpoints"] == "publishing"


def _stale(services: Services) -> timedelta:
    return timedelta(seconds=max(STALE_CHECKPOINT_SECONDS, 10 * services.publisher.interval) + 1)


def test_one_publisher_at_a_time_on_sqlite(services: Services) -> None:
    other = FileLockLeadership(services.settings.home / "publisher.lock")
    assert services.publisher.publish() is None  # empty log, but it took the role
    assert services.publisher.status.leader
    assert not other.hold()
    services.publisher.close()
    assert other.hold()
    other.release()


def test_the_publisher_role_moves_when_its_holder_dies_on_postgresql(
    settings: Settings, clock: FixedClock, postgres_url: str
) -> None:
    configured = settings.model_copy(update={"database_url": postgres_url})
    init_keys(configured.keys_dir)
    first = build_services(configured, clock)
    second = build_services(configured, clock)
    try:
        first.audit.append([decision_event(first, 0)])
        assert first.publisher.publish() is not None
        assert second.publisher.publish() is None
        assert not second.publisher.status.leader
        # The holder's connection dies as it would with its process (SIGKILL):
        # the server ends the session and drops its advisory lock.
        with first.engine.connect() as connection:
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"
                )
            )
        second.audit.append([decision_event(second, 1)])
        published = second.publisher.publish()
        assert published is not None and published.size == 2
        assert second.publisher.status.leader
        assert first.publisher.publish() is None  # it finds the role taken
    finally:
        second.close()
        first.close()


def test_advisory_leadership_is_exclusive(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    one, two = AdvisoryLockLeadership(engine), AdvisoryLockLeadership(engine)
    try:
        assert one.hold() and one.hold()
        assert not two.hold()
        one.release()
        assert two.hold()
    finally:
        one.release()
        two.release()
        engine.dispose()
