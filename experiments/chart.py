"""Geometry of the summary charts, as SVG coordinates (pure): conversion rate per variant with its interval, and an
experiment's cumulative difference per day of a phase with its confidence band."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.variants import CONTROL, TREATMENT, VARIANTS

WIDTH, HEIGHT, MARGIN, BAR = 520, 260, 40, 120


def chart_geometry(summary: dict[str, Any]) -> dict[str, Any]:
    """Bars and error bars in a WIDTH x HEIGHT box, scaled to the largest interval bound."""
    variants = summary["variants"]
    tops = [
        (v.get("conversionRateCi") or {}).get("upper") or v.get("conversionRate") or 0.0
        for v in (variants[CONTROL], variants[TREATMENT])
    ]
    scale_max = max(max(tops) * 1.15, 0.01)
    plot = HEIGHT - 2 * MARGIN

    def y(value: float) -> float:
        return round(HEIGHT - MARGIN - value / scale_max * plot, 1)

    bars = []
    for index, name in enumerate(VARIANTS):
        variant = variants[name]
        rate = variant.get("conversionRate") or 0.0
        interval = variant.get("conversionRateCi") or {"lower": rate, "upper": rate}
        x = MARGIN + 60 + index * (BAR + 100)
        bars.append(
            {
                "name": name,
                "x": x,
                "width": BAR,
                "y": y(rate),
                "height": round(HEIGHT - MARGIN - y(rate), 1),
                "center": x + BAR // 2,
                "cap_left": x + BAR // 2 - 12,
                "cap_right": x + BAR // 2 + 12,
                "low": y(interval["lower"]),
                "high": y(interval["upper"]),
                "label": f"{rate:.2%}" if variant.get("conversionRate") is not None else "no users",
                "range": f"[{interval['lower']:.2%}, {interval['upper']:.2%}]",
            }
        )
    baseline = HEIGHT - MARGIN
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "baseline": baseline,
        "label_y": baseline + 16,
        "bars": bars,
        "max": f"{scale_max:.1%}",
    }


# The cumulative difference chart: one point per day of the phase, in a CUM_WIDTH x CUM_HEIGHT box.
CUM_WIDTH, CUM_HEIGHT = 640, 280
CUM_LEFT, CUM_RIGHT, CUM_TOP, CUM_BOTTOM = 70, 620, 20, 240
# At most this many day labels on the x axis (every k-th day beyond it, and always the last).
MAX_DAY_LABELS = 14
# Half the width drawn for a band of a single day, so that it shows rather than collapsing to a line.
LONE_BAND_HALF_WIDTH = 4.0


@dataclass(frozen=True)
class DayPoint:
    """A day's difference as drawn: its position, and the day's numbers for the tooltip."""

    day: int
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class DayLabel:
    x: float
    text: str


@dataclass(frozen=True)
class CumulativeChart:
    """SVG geometry of the cumulative difference (treatment - control) per day with its confidence band.

    `bands` (polygon points) and `lines` (polyline points) are one string per run of consecutive days where the
    values exist; a day without users in one arm has none and breaks the run.
    """

    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    zero_y: float
    bands: list[str]
    lines: list[str]
    points: list[DayPoint]
    days: list[DayLabel]
    high_label: str
    low_label: str

    @property
    def empty(self) -> bool:
        return not self.points and not self.bands

    @property
    def mid_x(self) -> float:
        return (self.left + self.right) / 2

    @property
    def mid_y(self) -> float:
        return (self.top + self.bottom) / 2


def _pp(value: float | None) -> str:
    """A difference of rates in percentage points."""
    return "-" if value is None else f"{value * 100:+.2f} pp"


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class _Day:
    day: int
    difference: float | None
    lower: float | None
    upper: float | None


def _runs(indices: list[int]) -> list[list[int]]:
    """Consecutive runs of increasing indices: [0, 1, 3] -> [[0, 1], [3]]."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and runs[-1][-1] == index - 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def _scale(days: list[_Day]) -> tuple[float, float]:
    """(low, high) of the y axis: the values and zero, with a tenth of their span as margin."""
    values = [v for d in days for v in (d.difference, d.lower, d.upper) if v is not None]
    low, high = min([0.0, *values]), max([0.0, *values])
    span = high - low
    if span < 1e-9:
        return -0.012, 0.012
    return low - span * 0.1, high + span * 0.1


def _band(xs: list[float], lows: list[float], highs: list[float]) -> str:
    """Polygon points: along the upper bound left to right, back along the lower one; a lone day gets a width."""
    if len(xs) == 1:
        xs = [xs[0] - LONE_BAND_HALF_WIDTH, xs[0] + LONE_BAND_HALF_WIDTH]
        lows, highs = lows * 2, highs * 2
    corners = [*zip(xs, highs, strict=True), *reversed(list(zip(xs, lows, strict=True)))]
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in corners)


def cumulative_geometry(points: Sequence[Mapping[str, Any]]) -> CumulativeChart:
    """The chart of `points` ({day, difference, ciLower, ciUpper} as in the summary's `cumulative`, values possibly
    None): one x position per day, evenly spaced; y scaled to the values and zero."""
    days = [
        _Day(int(p["day"]), _float(p.get("difference")), _float(p.get("ciLower")), _float(p.get("ciUpper")))
        for p in points
    ]
    low, high = _scale(days)

    def y(value: float) -> float:
        return round(CUM_BOTTOM - (value - low) / (high - low) * (CUM_BOTTOM - CUM_TOP), 1)

    step = (CUM_RIGHT - CUM_LEFT) / (len(days) - 1) if len(days) > 1 else 0.0
    xs = [round(CUM_LEFT + i * step, 1) if step else (CUM_LEFT + CUM_RIGHT) / 2 for i in range(len(days))]
    banded = [i for i, d in enumerate(days) if d.lower is not None and d.upper is not None]
    bands = [
        _band([xs[i] for i in run], [y(days[i].lower or 0.0) for i in run], [y(days[i].upper or 0.0) for i in run])
        for run in _runs(banded)
    ]
    drawn = [i for i, d in enumerate(days) if d.difference is not None]
    marks = [
        DayPoint(
            day=days[i].day,
            x=xs[i],
            y=y(days[i].difference or 0.0),
            title=f"day {days[i].day}: {_pp(days[i].difference)} [{_pp(days[i].lower)}, {_pp(days[i].upper)}]",
        )
        for i in drawn
    ]
    lines = [" ".join(f"{xs[i]:.1f},{y(days[i].difference or 0.0):.1f}" for i in run) for run in _runs(drawn)]
    every = max(1, math.ceil(len(days) / MAX_DAY_LABELS))
    labelled = [i for i in range(len(days)) if i % every == 0 or i == len(days) - 1]
    return CumulativeChart(
        width=CUM_WIDTH,
        height=CUM_HEIGHT,
        left=CUM_LEFT,
        right=CUM_RIGHT,
        top=CUM_TOP,
        bottom=CUM_BOTTOM,
        zero_y=y(0.0),
        bands=bands,
        lines=lines,
        points=marks,
        days=[DayLabel(x=xs[i], text=f"day {days[i].day}") for i in labelled],
        high_label=_pp(high),
        low_label=_pp(low),
    )
