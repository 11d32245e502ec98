"""The overview's chart geometry and durations, without a browser."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.audit.stats import DayCounts
from gateway.console.figures import (
    HEIGHT,
    checkpoint_age,
    day_chart,
    duration_words,
    nice_ceiling,
)

FIRST = date(2026, 2, 28)


def _days() -> list[DayCounts]:
    days = [DayCounts(FIRST + timedelta(days=n)) for n in range(30)]
    days[0].grants.update({1: 4, 2: 2, 3: 1})
    days[0].denials = 3
    days[1].grants[1] = 13
    days[29].denials = 1
    return days


def test_axis_maxima_are_readable_numbers() -> None:
    assert [nice_ceiling(n) for n in (0, 1, 2, 3, 6, 10, 13, 51, 999)] == [
        1, 1, 2, 5, 10, 10, 20, 100, 1000,
    ]  # fmt: skip


def test_grants_stack_by_tier_and_denials_stand_beside_them() -> None:
    chart = day_chart(_days())
    assert chart.y_max == 20
    first = [bar for bar in chart.bars if bar.title.startswith("2026-02-28")]
    assert [bar.css for bar in first] == ["tier1", "tier2", "tier3", "denied"]
    tier1, tier2, tier3, denied = first
    # Stacked: tier 1 sits on the baseline, each next tier on top of the one before.
    near = pytest.approx  # coordinates are rounded to 0.1
    assert tier1.y + tier1.height == near(chart.baseline, abs=0.11)
    assert tier2.y + tier2.height == near(tier1.y, abs=0.11)
    assert tier3.y + tier3.height == near(tier2.y, abs=0.11)
    assert tier1.height == near(2 * tier2.height, abs=0.2) == near(4 * tier3.height, abs=0.2)
    assert denied.x > tier1.x + tier1.width
    assert denied.y + denied.height == near(chart.baseline, abs=0.11)
    assert denied.height == near(3 / 4 * tier1.height, abs=0.2)
    assert tier1.title == "2026-02-28: 4 grants to Tier 1"
    assert tier3.title == "2026-02-28: 1 grant to Tier 3"
    assert denied.title == "2026-02-28: 3 denials"
    # Empty days draw nothing; every bar fits in the picture.
    assert len(chart.bars) == 6
    assert all(bar.y >= 0 and bar.y + bar.height <= HEIGHT for bar in chart.bars)
    assert [tick.text for tick in chart.ticks] == ["0", "10", "20"]


def test_each_day_is_labelled_and_each_month_named_where_it_starts() -> None:
    chart = day_chart(_days())
    numbers = [label.text for label in chart.days if label.text.isdigit()]
    assert numbers[:3] == ["28", "1", "2"] and len(numbers) == 30
    assert [label.text for label in chart.days if not label.text.isdigit()] == ["Feb", "Mar"]


def test_an_empty_month_still_has_an_axis() -> None:
    chart = day_chart([DayCounts(FIRST + timedelta(days=n)) for n in range(30)])
    assert chart.bars == () and chart.y_max == 1


def test_durations_read_in_two_units_at_most() -> None:
    assert duration_words(timedelta(seconds=42)) == "42 s"
    assert duration_words(timedelta(minutes=5, seconds=3)) == "5 min 3 s"
    assert duration_words(timedelta(hours=1, minutes=30, seconds=9)) == "1 h 30 min"
    assert duration_words(timedelta(days=2, hours=4, minutes=1)) == "2 d 4 h"
    assert duration_words(timedelta(seconds=-3)) == "0 s"


def test_an_old_checkpoint_over_a_quiet_log_is_not_late() -> None:
    quiet = checkpoint_age(
        age=timedelta(hours=5), covered=40, size=40, waiting=timedelta(0), interval=1.0
    )
    assert not quiet.late and quiet.words == "5 h"


def test_entries_left_unsigned_for_a_few_intervals_are_late() -> None:
    behind = checkpoint_age(
        age=timedelta(minutes=2), covered=40, size=41, waiting=timedelta(seconds=4), interval=1.0
    )
    assert behind.late
    just_written = checkpoint_age(
        age=timedelta(minutes=2), covered=40, size=41, waiting=timedelta(seconds=2), interval=1.0
    )
    assert not just_written.late
    never = checkpoint_age(age=None, covered=0, size=3, waiting=timedelta(0), interval=1.0)
    assert never.late and never.words == "none yet"
