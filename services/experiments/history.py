"""Metric histories as chart-ready series: x-axis choice, smoothing, and non-finite values.

Pure functions from ``dict[run_id, list[MetricPoint]]`` (what the gateway's bulk history read
returns) to one :class:`Series` per run. NaN and ±inf cannot be drawn, so they are dropped from
the lines and counted, never raised on. MLflow's SQL stores save ±inf as ±``sys.float_info.max``
(about 1.8e308), so those count as infinite too: one such point would flatten every line.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.core.links import X_AXES
from services.core.records import MetricPoint, from_epoch_ms

MAX_SMOOTHING = 0.99
"""The strongest smoothing weight; 1.0 would flatten every line to its first value."""

X_AXIS_TITLES = {"step": "Step", "wall": "Wall time (UTC)", "relative": "Seconds since start"}
"""Axis title for each of :data:`services.core.links.X_AXES`."""

XValue = int | float | datetime


def is_finite_value(value: float) -> bool:
    """False for NaN, ±inf and ±``sys.float_info.max`` (how MLflow's SQL stores keep ±inf)."""
    return math.isfinite(value) and abs(value) < sys.float_info.max


@dataclass(frozen=True, slots=True)
class Series:
    """One run's history of one metric, ready to draw."""

    run_id: str
    """The run the points belong to."""
    x: tuple[XValue, ...]
    """Step numbers, aware UTC datetimes, or seconds since the run's first point."""
    y: tuple[float, ...]
    """The logged values, finite only."""
    smoothed: tuple[float, ...]
    """``y`` after exponential smoothing; equal to ``y`` when smoothing is 0."""
    dropped: int = 0
    """How many NaN or ±inf points were left out."""


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing, as MLflow's UI draws it.

    Args:
        values: Finite values in drawing order.
        weight: 0 (no smoothing) to 0.99; values outside are clamped.

    Returns:
        One smoothed value per input value. The first value is kept as is, because the
        average is debiased instead of starting from zero.
    """
    weight = min(max(weight, 0.0), MAX_SMOOTHING)
    if weight == 0.0:
        return list(values)
    smoothed: list[float] = []
    average = 0.0
    for count, value in enumerate(values, start=1):
        average = average * weight + (1.0 - weight) * value
        smoothed.append(average / (1.0 - weight**count))
    return smoothed


def x_values(points: Sequence[MetricPoint], x_axis: str) -> list[XValue]:
    """The x coordinate of each point for one of :data:`services.core.links.X_AXES`.

    Args:
        points: One run's points.
        x_axis: ``step``, ``wall`` (aware UTC datetime) or ``relative`` (seconds since the
            run's earliest point). An unknown value falls back to ``step``.
    """
    if x_axis == "wall":
        return [_wall_time(p.timestamp_ms) for p in points]
    if x_axis == "relative":
        first_ms = min((p.timestamp_ms for p in points), default=0)
        return [(p.timestamp_ms - first_ms) / 1000 for p in points]
    return [p.step for p in points]


def history_series(
    histories: Mapping[str, Sequence[MetricPoint]], x_axis: str = "step", smoothing: float = 0.0
) -> list[Series]:
    """One series per run, in the mapping's order, for a metric history chart.

    Args:
        histories: Each run's points of one metric, as the gateway returns them.
        x_axis: One of :data:`services.core.links.X_AXES`.
        smoothing: Exponential smoothing weight, 0 to 0.99.

    Returns:
        A series per run that has at least one finite point; runs without one are left out.
        Relative time is measured from the run's first point, finite or not.
    """
    axis = x_axis if x_axis in X_AXES else "step"
    series: list[Series] = []
    for run_id, points in histories.items():
        ordered = sorted(points, key=lambda p: (p.step, p.timestamp_ms))
        xs = x_values(ordered, axis)
        kept = [(x, p.value) for x, p in zip(xs, ordered, strict=True) if is_finite_value(p.value)]
        if not kept:
            continue
        ys = [value for _, value in kept]
        series.append(
            Series(
                run_id=run_id,
                x=tuple(x for x, _ in kept),
                y=tuple(ys),
                smoothed=tuple(smooth(ys, smoothing)),
                dropped=len(ordered) - len(kept),
            )
        )
    return series


def non_finite_points(histories: Mapping[str, Sequence[MetricPoint]]) -> int:
    """How many NaN or ±inf points the histories hold in all: what a chart of them leaves out."""
    return sum(not is_finite_value(p.value) for points in histories.values() for p in points)


def _wall_time(timestamp_ms: int) -> datetime:
    moment = from_epoch_ms(timestamp_ms)
    assert moment is not None
    return moment
