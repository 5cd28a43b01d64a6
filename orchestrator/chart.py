"""An hourly bar chart as plain SVG geometry, drawn on the server: no JavaScript, nothing to download.

Each hour has two stacked bars (the dispatch windows starting in it by outcome, i.e. their
status; those windows' function runs by outcome: orchestrator.dashboard files both) on one
count axis, and the backlog is a line on its own axis at the right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from core.display import OUTCOME_LABELS, colour

# Stacking order (bottom first): healthy outcomes at the bottom, trouble on top, each in its badges' colour
# (core.display). A window's mode is not its outcome: a failed publish keeps mode `dispatch`, its status says it failed.
WINDOW_OUTCOMES = (
    "enqueued",
    "inline",
    "paused",
    "pending",
    "missed",
    "abandoned",
    "inline_crashed",
    "dispatch_failed",
)
RUN_OUTCOMES = ("succeeded", "running", "failed")
OUTCOME_COLOURS = {outcome: colour(outcome) for outcome in WINDOW_OUTCOMES}
RUN_COLOURS = {outcome: colour(outcome) for outcome in RUN_OUTCOMES}
BACKLOG_COLOUR = "#444f59"
LABEL_EVERY_HOURS = 3


@dataclass(frozen=True)
class Hour:
    """One hour of the chart: windows by outcome (status), runs by status, peak backlog (None without a snapshot)."""

    start: datetime
    windows: Mapping[str, int]
    runs: Mapping[str, int]
    backlog: int | None


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    count_max: int
    backlog_max: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    backlog_points: str
    legend: tuple[tuple[str, str], ...]


def nice_ceiling(value: float) -> int:
    """Return the smallest of 1, 2, 5, 10, 20, 50, … that is at least `value` (1 for nothing)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def hourly_chart(hours: Sequence[Hour], *, width: int = 720, height: int = 220) -> Chart:
    """Lay out `hours` (oldest first) as stacked bars and a backlog line in a width × height box."""
    left, right, top, bottom = 40.0, width - 44.0, 12.0, height - 26.0
    count_max = nice_ceiling(
        max([0, *(sum(h.windows.values()) for h in hours), *(sum(h.runs.values()) for h in hours)])
    )
    backlog_max = nice_ceiling(max([0, *(h.backlog or 0 for h in hours)]))
    slot = (right - left) / max(len(hours), 1)
    bar_width = slot * 0.36

    def y_of(value: float, maximum: int) -> float:
        return bottom - (bottom - top) * value / maximum

    bars: list[Bar] = []
    labels: list[Label] = [
        Label(left - 6, bottom + 4, "0", "end"),
        Label(left - 6, top + 4, str(count_max), "end"),
        Label(right + 6, top + 4, str(backlog_max), "start"),
    ]
    points: list[str] = []
    for index, hour in enumerate(hours):
        x = left + index * slot + slot * 0.12
        stamp = f"{hour.start:%H:00}"
        bars += _stack(x, bar_width, hour.windows, OUTCOME_COLOURS, "windows", stamp, count_max, y_of)
        bars += _stack(x + bar_width, bar_width, hour.runs, RUN_COLOURS, "runs", stamp, count_max, y_of)
        if hour.backlog is not None:
            points.append(f"{x + bar_width:.1f},{y_of(hour.backlog, backlog_max):.1f}")
        if index % LABEL_EVERY_HOURS == 0:
            labels.append(Label(x + bar_width, bottom + 16, stamp))
    legend = (
        *((f"windows: {OUTCOME_LABELS.get(outcome, outcome)}", fill) for outcome, fill in OUTCOME_COLOURS.items()),
        *((f"runs: {status}", fill) for status, fill in RUN_COLOURS.items()),
        ("backlog (right axis)", BACKLOG_COLOUR),
    )
    return Chart(
        width=width,
        height=height,
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        count_max=count_max,
        backlog_max=backlog_max,
        bars=tuple(bars),
        labels=tuple(labels),
        backlog_points=" ".join(points),
        legend=legend,
    )


def _stack(
    x: float,
    width: float,
    counts: Mapping[str, int],
    colours: Mapping[str, str],
    noun: str,
    stamp: str,
    maximum: int,
    y_of: Callable[[float, int], float],
) -> list[Bar]:
    bars: list[Bar] = []
    base = 0
    for name, fill in colours.items():
        count = counts.get(name, 0)
        if not count:
            continue
        top_y, bottom_y = y_of(base + count, maximum), y_of(base, maximum)
        label = OUTCOME_LABELS.get(name, name)
        bars.append(Bar(x, top_y, width, bottom_y - top_y, fill, f"{stamp} {noun} {label}: {count}"))
        base += count
    return bars
