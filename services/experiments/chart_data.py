"""Data for the charts across runs: one row per run with its params and metrics as columns,
and the chart pickers resolved against the columns the runs have.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from services.core.links import CompareView
from services.core.records import Run
from services.experiments.compare import (
    RUN_COLUMN,
    RUN_ID_COLUMN,
    metric_names,
    param_names,
    run_labels,
)
from services.experiments.history import is_finite_value

PARAM_PREFIX = "params."


METRIC_PREFIX = "metrics."


def chart_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run with ``params.<key>`` and ``metrics.<key>`` columns, for charts.

    A param column is numeric (float) when every logged value parses as a finite number, and
    text otherwise. Missing values are NaN in numeric columns and None in text ones. Metric
    columns are floats and keep NaN and ±inf as logged; charts drop what they cannot draw.
    """
    labels = run_labels(runs)
    frame = pd.DataFrame(
        {
            RUN_COLUMN: [labels[run.run_id] for run in runs],
            RUN_ID_COLUMN: [run.run_id for run in runs],
        }
    )
    for key in param_names(runs):
        frame[PARAM_PREFIX + key] = as_numbers_if_possible([run.params.get(key) for run in runs])
    for key in metric_names(runs):
        frame[METRIC_PREFIX + key] = pd.Series(
            [run.metrics.get(key, math.nan) for run in runs], dtype="float64"
        )
    return frame


def as_numbers_if_possible(values: Sequence[str | None]) -> pd.Series:
    """Floats when every present value is a finite number, else the values as text."""
    numbers: list[float] = []
    for value in values:
        if value is None:
            numbers.append(math.nan)
            continue
        try:
            number = float(value)
        except ValueError:
            return pd.Series(list(values), dtype="object")
        if not is_finite_value(number):
            return pd.Series(list(values), dtype="object")
        numbers.append(number)
    return pd.Series(numbers, dtype="float64")


def is_numeric_column(frame: pd.DataFrame, column: str) -> bool:
    """True when a chart frame's column holds numbers."""
    return bool(pd.api.types.is_numeric_dtype(frame[column]))


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The chart frame's ``params.*`` columns."""
    return [c for c in frame.columns if str(c).startswith(PARAM_PREFIX)]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The chart frame's ``metrics.*`` columns."""
    return [c for c in frame.columns if str(c).startswith(METRIC_PREFIX)]


def varying_columns(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """Those of ``columns`` with more than one distinct value (missing counts as a value)."""
    return [c for c in columns if frame[c].astype("string").fillna("").nunique() > 1]


@dataclass(frozen=True, slots=True)
class ChartChoices:
    """What the charts across runs show: the view's choices where valid, else defaults."""

    parallel_metric: str
    """The ``metrics.*`` column the parallel-coordinates chart ends on; empty without metrics."""
    parallel_params: tuple[str, ...]
    """The ``params.*`` columns it runs through: those that vary between runs."""
    scatter_x: str
    """Scatter x column; empty when the frame has no params or metrics."""
    scatter_y: str
    """Scatter y column."""
    box_metric: str
    """The ``metrics.*`` column of the box plot."""
    box_group: str
    """The ``params.*`` column it groups by; empty without params."""


def chart_choices(view: CompareView, frame: pd.DataFrame) -> ChartChoices:
    """Resolve the view's chart pickers against the columns the runs have.

    A choice that names a column the runs lack (a stale or edited link) falls back to a
    default: the first varying param, and the first metric in the view's history metrics or
    else alphabetically.
    """
    params = param_columns(frame)
    metrics = metric_columns(frame)
    varying = varying_columns(frame, params)
    preferred = [METRIC_PREFIX + m for m in view.metrics if METRIC_PREFIX + m in metrics]
    first_metric = (preferred or metrics or [""])[0]
    first_param = (varying or params or [""])[0]
    everything = params + metrics

    def pick(chosen: str, options: Sequence[str], default: str) -> str:
        return chosen if chosen in options else default

    return ChartChoices(
        parallel_metric=pick(METRIC_PREFIX + view.parallel_metric, metrics, first_metric),
        parallel_params=tuple(varying),
        scatter_x=pick(view.scatter_x, everything, first_param or first_metric),
        scatter_y=pick(view.scatter_y, everything, first_metric),
        box_metric=pick(METRIC_PREFIX + view.box_metric, metrics, first_metric),
        box_group=pick(view.box_group, params, first_param),
    )


def bare_name(column: str) -> str:
    """``metrics.x`` or ``params.x`` without its prefix."""
    for prefix in (METRIC_PREFIX, PARAM_PREFIX):
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column
