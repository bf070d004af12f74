"""Small charts for the overview's model cards (and the exported report): pure plotly builders."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from services.experiments.charts import ALIAS_COLOR, PALETTE, plain
from services.governance.config import DriftThresholds
from services.monitoring.drift_charts import status_color
from services.overview.fleet import ModelHealth

SPARK_HEIGHT = 110
"""Pixels: a card's charts stay small so a fleet fits on one screen."""

_SPARK_LAYOUT: dict[str, Any] = {
    "height": SPARK_HEIGHT,
    "margin": {"l": 4, "r": 4, "t": 22, "b": 4},
    "showlegend": False,
    "xaxis": {"visible": False},
    "yaxis": {"visible": True, "tickfont": {"size": 9}, "nticks": 3},
    "title": {"font": {"size": 12}, "x": 0, "xanchor": "left"},
}


def metric_trend(health: ModelHealth) -> go.Figure:
    """The primary metric across versions, the champion marked."""
    figure = go.Figure()
    versions = [v for v, _ in health.metric_by_version]
    values = [value for _, value in health.metric_by_version]
    figure.add_trace(
        go.Scatter(
            x=[f"v{v}" for v in versions],
            y=values,
            mode="lines+markers",
            line={"color": PALETTE[0]},
            hovertemplate="%{x}: %{y:.4g}<extra></extra>",
        )
    )
    if health.champion_metric is not None:
        figure.add_trace(
            go.Scatter(
                x=[f"v{health.champion}"],
                y=[health.champion_metric],
                mode="markers",
                marker={"color": ALIAS_COLOR, "size": 10},
                hovertemplate="@champion %{x}: %{y:.4g}<extra></extra>",
            )
        )
    figure.update_layout(title={"text": plain(f"{health.primary_metric} by version")})
    return figure.update_layout(**_SPARK_LAYOUT)


def drift_sparkline(health: ModelHealth, thresholds: DriftThresholds) -> go.Figure:
    """The share of drifted columns in the latest batches, the alarm share as a line."""
    figure = go.Figure(
        go.Scatter(
            y=list(health.drift_shares),
            mode="lines+markers",
            line={"color": status_color(health.drift.level)},
            hovertemplate="%{y:.0%} drifted<extra></extra>",
        )
    )
    figure.add_hline(y=thresholds.alarm_share, line={"color": status_color("red"), "dash": "dot"})
    figure.update_layout(title={"text": f"Drift, last {len(health.drift_shares)} batches"})
    figure.update_yaxes(tickformat=".0%", range=[0, max([1.0, *health.drift_shares])])
    return figure.update_layout(**_SPARK_LAYOUT)
