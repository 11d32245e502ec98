"""The columns queries filter on are checked against the entries; times compare as instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from gateway.audit.verify import verify_log
from gateway.bootstrap import Services
from gateway.state.tables import AuditEntry
from tests.audit.support import decision_event
from tests.conftest import START


def _verify(services: Services) -> list[str]:
    report = verify_log(
        services.audit.entries(),
        origin=services.audit.origin,
        public_key=services.keys.audit_signer.public_key(),
        checkpoint_notes=services.audit.checkpoint_notes(),
        state=services.audit.tree_state(),
    )
    return [f"{p.kind} {p.index}: {p.message}" for p in report.problems]


@pytest.mark.parametrize(
    ("column", "forged"),
    [
        ("subject", "someone-else"),
        ("org_id", "another-org"),
        ("decision", "allow"),
        ("tier", 1),
        ("time", datetime(2020, 1, 1, tzinfo=UTC)),
    ],
)
def test_a_filter_column_edited_to_hide_an_entry_is_caught_by_verify(
    services: Services, column: str, forged: object
) -> None:
    for number in range(3):
        services.audit.append([decision_event(services, number)])
    assert _verify(services) == []
    with services.engine.begin() as connection:
        connection.execute(update(AuditEntry).where(AuditEntry.idx == 1).values({column: forged}))
    # The entry bytes still hash right, but a query on that column would miss it.
    assert _verify(services) == [
        f"modified 1: entry 1 has a {column} column that does not match it"
    ]


def test_time_filters_compare_instants_whatever_the_offset(services: Services) -> None:
    services.audit.append([decision_event(services, 0)])  # written at START, 09:00Z
    plus_two = timezone(timedelta(hours=2))
    # 10:30+02:00 is 08:30Z: before the entry, so the entry is found.
    assert len(services.audit.query(since=datetime(2026, 3, 2, 10, 30, tzinfo=plus_two))) == 1
    # 11:30+02:00 is 09:30Z: after it.
    assert services.audit.query(since=datetime(2026, 3, 2, 11, 30, tzinfo=plus_two)) == []
    # A time without an offset is UTC.
    assert len(services.audit.query(until=START.replace(tzinfo=None) + timedelta(minutes=1))) == 1
    assert services.audit.query(until=START.replace(tzinfo=None)) == []
