"""The overview's figures as data: the day chart's geometry, a duration in words. Pure.

The chart is drawn by the server as inline SVG, so it needs no script and
shows the same on an air-gapped host; this module only says where each
rectangle goes, which class colours it and what its tooltip says. The
template writes them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from gateway.audit.stats import DayCounts

WIDTH, HEIGHT = 900.0, 240.0
LEFT, RIGHT, TOP, BOTTOM = 44.0, 8.0, 12.0, 34.0  # room for the y ticks and the day labels
TIER_CLASSES = {1: "tier1", 2: "tier2", 3: "tier3"}
_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # tier1, tier2, tier3 or denied: console.css colours them
    title: str  # the tooltip: the day, what is counted, how many


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: float
    height: float
    left: float
    right: float
    baseline: float  # the y of zero
    y_max: int
    ticks: tuple[Label, ...]  # y-axis values, at x = left
    bars: tuple[Bar, ...]
    days: tuple[Label, ...]  # x-axis labels under each day


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... at least ``value``: a readable axis maximum."""
    step = 1
    while True:
        for multiple in (1, 2, 5):
            if step * multiple >= value:
                return step * multiple
        step *= 10


def day_chart(days: Sequence[DayCounts]) -> Chart:
    """Per day, a bar of grants stacked by tier (1 at the bottom) and a bar of denials beside it."""
    y_max = nice_ceiling(max([1, *(max(d.granted, d.denials) for d in days)]))
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    slot = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    grant_width, deny_width = slot * 0.45, slot * 0.3

    def height_of(count: int) -> float:
        return count / y_max * plot_height

    bars: list[Bar] = []
    labels: list[Label] = []
    for n, day in enumerate(days):
        x = LEFT + n * slot + slot * 0.1
        top = baseline
        for tier, css in TIER_CLASSES.items():
            count = day.grants.get(tier, 0)
            if count:
                height = height_of(count)
                top -= height
                bars.append(
                    Bar(
                        _r(x),
                        _r(top),
                        _r(grant_width),
                        _r(height),
                        css,
                        f"{day.day.isoformat()}: {_plural(count, 'grant')} to Tier {tier}",
                    )
                )
        if day.denials:
            height = height_of(day.denials)
            bars.append(
                Bar(
                    _r(x + grant_width + slot * 0.05),
                    _r(baseline - height),
                    _r(deny_width),
                    _r(height),
                    "denied",
                    f"{day.day.isoformat()}: {_plural(day.denials, 'denial')}",
                )
            )
        # The day of the month under each day; the month's name under its first
        # day and under the chart's first day, on a second line.
        centre = LEFT + (n + 0.5) * slot
        labels.append(Label(_r(centre), _r(baseline + 13), str(day.day.day)))
        if n == 0 or day.day.day == 1:
            labels.append(Label(_r(centre), _r(baseline + 26), _MONTHS[day.day.month - 1]))
    # Zero, the maximum, and the middle when it is a whole number.
    values = (0, y_max // 2, y_max) if y_max % 2 == 0 else (0, y_max)
    ticks = tuple(Label(LEFT - 6, _r(baseline - height_of(v) + 3.5), str(v)) for v in values)
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        right=WIDTH - RIGHT,
        baseline=_r(baseline),
        y_max=y_max,
        ticks=ticks,
        bars=tuple(bars),
        days=tuple(labels),
    )


def duration_words(span: timedelta) -> str:
    """``span`` to the two largest units a person reads at a glance: "3 h 5 min", "2 d 4 h"."""
    seconds = max(int(span.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    return f"{seconds} s"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _r(value: float) -> float:
    return round(value, 1)


# A checkpoint is late when entries have waited this many publication intervals.
LATE_INTERVALS = 3


@dataclass(frozen=True)
class CheckpointAge:
    """The newest checkpoint's age, and whether the publisher has fallen behind."""

    age: timedelta | None  # None: no checkpoint yet
    covered: int  # entries the newest checkpoint covers
    size: int  # entries in the log
    waiting: timedelta  # how long the oldest uncovered entry has waited
    late: bool

    @property
    def words(self) -> str:
        return "none yet" if self.age is None else duration_words(self.age)


def checkpoint_age(
    *, age: timedelta | None, covered: int, size: int, waiting: timedelta, interval: float
) -> CheckpointAge:
    """Late only if entries wait unsigned for a few intervals.

    The publisher signs only when the log has grown, so on a quiet log the
    newest checkpoint grows old while covering every entry: that is not late.
    """
    late_after = timedelta(seconds=LATE_INTERVALS * interval)
    late = size > covered and (age is None or waiting > late_after)
    return CheckpointAge(age, covered, size, waiting, late)
