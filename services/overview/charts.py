"""Small Vega-Lite charts for the overview's model cards (and the exported report)."""

from __future__ import annotations

import altair as alt

from services.experiments.charts import ALIAS_COLOR, PALETTE
from services.experiments.vega import layer, titled
from services.governance.config import DriftThresholds
from services.monitoring.drift_charts import status_color
from services.overview.fleet import ModelHealth

SPARK_HEIGHT = 90
"""Pixels of plot: a card's charts stay small so a fleet fits on one screen."""
_SPARK_AXIS = alt.Axis(tickCount=3, labelFontSize=9, title=None, grid=False)


def metric_trend(health: ModelHealth) -> alt.TopLevelMixin:
    """The primary metric across versions, the champion marked (layers ``versions`` and,
    with a champion, ``champion``)."""
    rows = [{"version": f"v{v}", "value": value} for v, value in health.metric_by_version]
    order = [f"v{v}" for v, _ in health.metric_by_version]
    x = alt.X("version:O", sort=order, axis=None)
    y = alt.Y("value:Q", scale=alt.Scale(zero=False), axis=_SPARK_AXIS)
    tooltip = [alt.Tooltip("version:N", title="Version"), alt.Tooltip("value:Q", format=".4g")]
    versions = (
        layer("versions", rows)
        .mark_line(point=True, color=PALETTE[0])
        .encode(x=x, y=y, tooltip=tooltip)
    )
    charted = [versions]
    if health.champion_metric is not None:
        champion = [{"version": f"v{health.champion}", "value": health.champion_metric}]
        charted.append(
            layer("champion", champion)
            .mark_point(filled=True, size=90, color=ALIAS_COLOR, opacity=1)
            .encode(x=x, y=y, tooltip=tooltip)
        )
    return titled(alt.layer(*charted), f"{health.primary_metric} by version", SPARK_HEIGHT)


def drift_sparkline(health: ModelHealth, thresholds: DriftThresholds) -> alt.TopLevelMixin:
    """The share of drifted columns in the latest batches, the alarm share as a dotted line
    (layers ``shares`` and ``alarm``)."""
    color = status_color(health.drift.level)
    shares = [{"batch": i, "share": share} for i, share in enumerate(health.drift_shares)]
    y_scale = alt.Scale(domain=[0, max([1.0, *health.drift_shares])], nice=False)
    y = alt.Y("share:Q", scale=y_scale, axis=alt.Axis(format=".0%", tickCount=3, labelFontSize=9,
                                                      title=None, grid=False))  # fmt: skip
    line = (
        layer("shares", shares)
        .mark_line(point=alt.OverlayMarkDef(color=color), color=color)
        .encode(
            x=alt.X("batch:O", axis=None),
            y=y,
            tooltip=alt.Tooltip("share:Q", title="Drifted", format=".0%"),
        )
    )
    alarm = (
        layer("alarm", [{"share": thresholds.alarm_share}])
        .mark_rule(color=status_color("red"), strokeDash=[2, 2])
        .encode(y=y)
    )
    title = f"Drift, last {len(health.drift_shares)} batches"
    return titled(alt.layer(line, alarm), title, SPARK_HEIGHT)
