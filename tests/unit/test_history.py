from __future__ import annotations

import math
import sys
from datetime import UTC, datetime

import pytest

from services.core.records import MetricPoint
from services.experiments.history import (
    history_series,
    is_finite_value,
    non_finite_points,
    smooth,
    x_values,
)

T0_MS = 1_790_000_000_000


def points(*values: float, start_ms: int = T0_MS, every_ms: int = 500) -> list[MetricPoint]:
    return [MetricPoint(step, start_ms + step * every_ms, v) for step, v in enumerate(values)]


def test_no_smoothing_keeps_values_as_logged() -> None:
    assert smooth([1.0, 5.0, 2.0], 0.0) == [1.0, 5.0, 2.0]


def test_smoothing_is_debiased_so_the_first_value_is_kept() -> None:
    smoothed = smooth([10.0, 0.0], 0.5)
    assert smoothed[0] == pytest.approx(10.0)
    # average 0.5·5 + 0 = 2.5, debiased by 1 − 0.5² = 0.75
    assert smoothed[1] == pytest.approx(2.5 / 0.75)


def test_smoothing_weight_is_clamped_below_one_so_lines_still_move() -> None:
    smoothed = smooth([0.0, 100.0], 1.5)
    assert 0.0 < smoothed[1] < 100.0


def test_step_axis_uses_step_numbers() -> None:
    assert x_values(points(1.0, 2.0, 3.0), "step") == [0, 1, 2]


def test_wall_axis_gives_aware_utc_datetimes() -> None:
    first = x_values(points(1.0), "wall")[0]
    assert first == datetime.fromtimestamp(T0_MS / 1000, tz=UTC)


def test_relative_axis_counts_seconds_from_the_runs_first_point() -> None:
    assert x_values(points(1.0, 2.0, 3.0, every_ms=1500), "relative") == [0.0, 1.5, 3.0]


def test_unknown_x_axis_falls_back_to_steps() -> None:
    (series,) = history_series({"r1": points(1.0, 2.0)}, x_axis="sideways")
    assert series.x == (0, 1)


def test_nan_and_inf_are_dropped_from_lines_and_counted() -> None:
    history = {"r1": points(1.0, math.nan, math.inf, -math.inf, 2.0)}
    (series,) = history_series(history, smoothing=0.6)
    assert series.x == (0, 4)
    assert series.y == (1.0, 2.0)
    assert all(math.isfinite(v) for v in series.smoothed)
    assert series.dropped == 3
    assert non_finite_points(history) == 3


def test_run_with_only_non_finite_points_has_no_line_and_no_crash() -> None:
    history = {"r1": points(math.nan, math.inf), "r2": points(1.0)}
    assert [s.run_id for s in history_series(history)] == ["r2"]


def test_run_without_points_has_no_line() -> None:
    assert history_series({"r1": [], "r2": points(0.5)})[0].run_id == "r2"


def test_relative_time_starts_at_the_first_point_even_when_it_is_nan() -> None:
    (series,) = history_series({"r1": points(math.nan, 1.0, every_ms=2000)}, "relative")
    assert series.x == (2.0,)


def test_points_out_of_step_order_are_drawn_in_step_order() -> None:
    shuffled = [MetricPoint(2, T0_MS + 2, 3.0), MetricPoint(0, T0_MS, 1.0)]
    (series,) = history_series({"r1": shuffled})
    assert series.x == (0, 2)
    assert series.y == (1.0, 3.0)


def test_series_keep_the_runs_order() -> None:
    history = {"b": points(1.0), "a": points(2.0), "c": points(3.0)}
    assert [s.run_id for s in history_series(history)] == ["b", "a", "c"]


def test_unsmoothed_series_has_smoothed_equal_to_raw() -> None:
    (series,) = history_series({"r1": points(3.0, 1.0, 2.0)})
    assert series.smoothed == series.y


def test_mlflows_stored_infinity_counts_as_infinite() -> None:
    # MLflow's SQL stores save +inf as the largest float; drawn, it would flatten every line.
    history = {"r1": points(1.0, sys.float_info.max, -sys.float_info.max, 2.0)}
    (series,) = history_series(history)
    assert series.y == (1.0, 2.0)
    assert non_finite_points(history) == 2
    assert not is_finite_value(sys.float_info.max)
    assert is_finite_value(1e300)
