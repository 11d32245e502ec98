"""The columns queries filter on are checked against the entries; times compare as instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import update

from gateway.bootstrap import Services
from gateway.state.tables import AuditEntry
from tests.audit.support import decision_event, verify
from tests.conftest import START


def _verify(services: Services) -> list[str]:
    return [f"{p.kind} {p.index}: {p.message}" for p in verify(services).problems]


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
