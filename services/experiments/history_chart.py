"""A metric's history across runs, in Vega-Lite: the chart Compare draws first.

Vega-Lite rather than plotly so the page's first chart waits for 0.8 MB of script, not 4.7 MB
(see :mod:`services.experiments.vega`). Layers, by name: ``raw`` (the faint unsmoothed lines
behind smoothed ones), ``lines`` (one per run) and ``single points`` (runs with one value,
which a line cannot show).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import altair as alt

from services.experiments.charts import LEGEND_BELOW_MAX_ENTRIES, PALETTE, RAW_LINE_OPACITY
from services.experiments.history import X_AXIS_TITLES, Series, XValue
from services.experiments.vega import empty, layer, titled, utc


def history_chart(
    metric: str,
    series: Sequence[Series],
    labels: Mapping[str, str],
    colors: Mapping[str, str],
    x_axis: str = "step",
    log_scale: bool = False,
) -> alt.TopLevelMixin:
    """One line per run of a metric's history; the legend names the runs.

    When a series is smoothed, its raw values are drawn faintly behind the smoothed line, as
    TensorBoard and MLflow do.

    Args:
        metric: The metric's name, for the title.
        series: One per run, from :func:`services.experiments.history.history_series`.
        labels: Run id → legend name (distinct, from ``compare.run_labels``).
        colors: Run id → colour, from :func:`services.experiments.charts.run_colors`.
        x_axis: ``step``, ``wall`` or ``relative``, for the axis.
        log_scale: Log-scale y-axis; values ≤ 0 then fall off the chart.
    """
    if not series:
        return empty(metric, "No finite values logged for these runs.")
    names = [labels.get(line.run_id, line.run_id[:8]) for line in series]
    runs = alt.Scale(domain=names, range=[colors.get(line.run_id, PALETTE[0]) for line in series])
    legend = (
        alt.Legend(orient="bottom", title=None)
        if len(series) <= LEGEND_BELOW_MAX_ENTRIES
        else alt.Legend(orient="right", title=None, labelLimit=220)
    )
    x = (
        alt.X("x:T", title=X_AXIS_TITLES["wall"], scale=alt.Scale(type="utc"))
        if x_axis == "wall"
        else alt.X("x:Q", title=X_AXIS_TITLES.get(x_axis, "Step"))
    )
    y = alt.Y("y:Q", title=None, scale=alt.Scale(type="log" if log_scale else "linear", zero=False))
    color = alt.Color("run:N", scale=runs, legend=legend)
    drawn: list[alt.Chart] = []
    smoothed = [(name, line) for name, line in zip(names, series, strict=True)
                if line.smoothed != line.y]  # fmt: skip
    if smoothed:
        raw = [
            _point(name, x, y)
            for name, line in smoothed
            for x, y in zip(line.x, line.y, strict=True)
        ]
        drawn.append(
            layer("raw", raw)
            .mark_line(strokeWidth=1, opacity=RAW_LINE_OPACITY)
            .encode(x=x, y=y, color=color)
        )
    points = [
        _point(name, x, y)
        for name, line in zip(names, series, strict=True)
        for x, y in zip(line.x, line.smoothed, strict=True)
    ]
    drawn.append(
        layer("lines", points)
        .mark_line(strokeWidth=2)
        .encode(x=x, y=y, color=color, tooltip=alt.Tooltip("run:N", title="Run"))
    )
    single = [_point(name, line.x[0], line.smoothed[0])
              for name, line in zip(names, series, strict=True) if len(line.x) == 1]  # fmt: skip
    if single:
        drawn.append(
            layer("single points", single)
            .mark_point(filled=True, size=60, opacity=1)
            .encode(x=x, y=y, color=color, tooltip=[alt.Tooltip("run:N", title="Run"),
                                                     alt.Tooltip("y:Q", format=".4g")])
        )  # fmt: skip
    return titled(alt.layer(*drawn), metric)


def _point(run: str, x: XValue, y: float) -> dict[str, Any]:
    return {"run": run, "x": utc(x) if isinstance(x, datetime) else x, "y": y}
