"""Vega-Lite builders for drift monitoring, and the status colours.

Drift over time (the share of drifted columns against the warning and alarm bands), a heatmap
of per-column scores by batch, and one column's reference-against-current distribution drawn
from the compact summary's histogram. The palette is :mod:`services.experiments.charts`'s and
the frame :mod:`services.experiments.vega`'s. Column names and category values are untrusted:
they are only ever values in a chart's data, which Vega draws as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any, Final

import altair as alt

from services.experiments.charts import CHART_HEIGHT, PALETTE
from services.experiments.vega import empty, layer, titled, utc
from services.governance.config import DriftThresholds
from services.monitoring.drift import NUMERIC, FeatureDrift, Histogram
from services.monitoring.runs import AMBER, GREEN, RED, UNKNOWN, MonitoringRun

# -- status colours: the one place they are chosen -------------------------------------------------

STATUS_COLORS = {GREEN: PALETTE[2], AMBER: PALETTE[1], RED: PALETTE[3], UNKNOWN: PALETTE[9]}
"""Drift status → colour in figures."""
STATUS_BADGES = {GREEN: "green", AMBER: "orange", RED: "red", UNKNOWN: "gray"}
"""Drift status → Streamlit's badge colour name, matching :data:`STATUS_COLORS`."""
STATUS_LABELS = {GREEN: "No drift", AMBER: "Warning", RED: "Alarm", UNKNOWN: "Unknown"}
"""Drift status → the word on the badge."""
STATUS_ICONS = {
    GREEN: ":material/check_circle:",
    AMBER: ":material/warning:",
    RED: ":material/error:",
    UNKNOWN: ":material/help:",
}
"""Drift status → the icon on the badge."""
BAND_OPACITY = 0.15
"""The warning and alarm bands behind the drift-share line."""
REFERENCE_COLOR = PALETTE[0]
"""The reference (training) sample in distribution charts."""
CURRENT_COLOR = PALETTE[1]
"""The monitored (current) batch in distribution charts."""
VERSION_COLOR = PALETTE[5]
"""Markers where the monitored model version changed."""
OVERLAY_OPACITY = 0.6
"""Overlaid histograms, so both stay visible."""
CONTINUOUS_SCHEME: Final = "viridis"
"""Vega's name for the colour scale of per-column scores."""


def status_color(level: str) -> str:
    """The colour of a drift status (grey for one not known)."""
    return STATUS_COLORS.get(level, STATUS_COLORS[UNKNOWN])


def drift_over_time(
    runs: Sequence[MonitoringRun], thresholds: DriftThresholds
) -> alt.TopLevelMixin:
    """The share of drifted columns per batch, against the warning and alarm bands.

    One line per monitored alias, a point per batch at its window's end. An amber band spans
    ``warning_share`` to ``alarm_share`` and a red band ``alarm_share`` upwards. Where the
    version an alias points at changed between two batches, a marker names the change and a
    dotted line crosses the chart.

    Layers (by name): ``bands``, ``thresholds`` and ``threshold labels``, ``shares`` and,
    when a version changed, ``changes``, ``change markers`` and ``change labels``.

    Args:
        runs: Monitoring runs of one model, any order.
        thresholds: The configured warning and alarm shares.
    """
    title = "Share of drifted columns"
    if not runs:
        return empty(title, "No monitoring batches in this time range.")
    top = max(1.0, *(run.drift_share for run in runs))
    y_scale = alt.Scale(domain=[0, top * 1.05], nice=False)
    x = alt.X("end:T", title="Batch window end (UTC)", scale=alt.Scale(type="utc"))
    bands = layer(
        "bands",
        [
            {"level": "warning", "from": thresholds.warning_share, "to": thresholds.alarm_share},
            {"level": "alarm", "from": thresholds.alarm_share, "to": top},
        ],
    ).mark_rect(opacity=BAND_OPACITY)
    levels = alt.Scale(
        domain=["warning", "alarm"], range=[STATUS_COLORS[AMBER], STATUS_COLORS[RED]]
    )
    bands = bands.encode(
        y=alt.Y("from:Q", scale=y_scale),
        y2="to:Q",
        color=alt.Color("level:N", scale=levels, legend=None),
    )
    threshold_rows = [
        {"level": level, "share": share, "label": f"{level} {share:.0%}"}
        for level, share in (
            ("warning", thresholds.warning_share),
            ("alarm", thresholds.alarm_share),
        )
    ]
    rule_y = alt.Y("share:Q", scale=y_scale)
    threshold_lines = (
        layer("thresholds", threshold_rows)
        .mark_rule(strokeDash=[6, 4])
        .encode(y=rule_y, color=alt.Color("level:N", scale=levels, legend=None))
    )
    threshold_labels = (
        layer("threshold labels", threshold_rows)
        .mark_text(align="left", baseline="bottom", x=4, dy=-2)
        .encode(y=rule_y, text="label:N", color=alt.Color("level:N", scale=levels, legend=None))
    )
    by_alias = _by_alias(runs)
    names = [f"@{alias}" if alias else "(no alias)" for alias in by_alias]
    points: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    for name, batches in zip(names, by_alias.values(), strict=True):
        points += [
            {
                "end": utc(run.window_end),
                "share": run.drift_share,
                "alias": name,
                "version": run.version,
                "window": f"{run.window_start:%Y-%m-%d} → {run.window_end:%Y-%m-%d}",
                "columns": run.drifted_columns,
            }
            for run in batches
        ]
        changes += [
            {"end": utc(later.window_end), "share": later.drift_share,
             "change": f"v{earlier.version} → v{later.version}"}
            for earlier, later in pairwise(batches)
            if later.version != earlier.version
        ]  # fmt: skip
    aliases = alt.Scale(domain=names, range=[PALETTE[i % len(PALETTE)] for i in range(len(names))])
    shares = (
        layer("shares", points)
        .mark_line(point=alt.OverlayMarkDef(size=60), strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("share:Q", title="Drifted columns", axis=alt.Axis(format=".0%"), scale=y_scale),
            color=alt.Color(
                "alias:N", scale=aliases, title=None, legend=alt.Legend(orient="bottom")
            ),
            tooltip=[
                alt.Tooltip("alias:N", title="Alias"),
                alt.Tooltip("version:Q", title="Version"),
                alt.Tooltip("window:N", title="Window"),
                alt.Tooltip("share:Q", title="Drifted", format=".0%"),
                alt.Tooltip("columns:Q", title="Drifted columns"),
            ],
        )
    )
    charted: list[alt.Chart] = [bands, threshold_lines, threshold_labels, shares]
    if changes:
        charted += [
            layer("changes", changes).mark_rule(color=VERSION_COLOR, strokeDash=[2, 3]).encode(x=x),
            layer("change markers", changes)
            .mark_point(shape="diamond", size=160, filled=True, color=VERSION_COLOR)
            .encode(
                x=x,
                y=alt.Y("share:Q", scale=y_scale),
                tooltip=alt.Tooltip("change:N", title="Version changed"),
            ),
            layer("change labels", changes)
            .mark_text(dy=-14, color=VERSION_COLOR)
            .encode(x=x, y=alt.Y("share:Q", scale=y_scale), text="change:N"),
        ]
    # Bands and aliases are two colour scales: one shared scale would mix their colours.
    return titled(alt.layer(*charted).resolve_scale(color="independent"), title)


def drift_heatmap(runs: Sequence[MonitoringRun]) -> alt.TopLevelMixin:
    """Each column's drift score in each batch: a row per column, a column per batch window.

    Scores are what the column's method reports (a p-value for K-S, a distance for
    Wasserstein), so compare a row across batches rather than rows with each other. A column
    missing from a batch leaves a gap. Its one layer is named ``scores``.

    Args:
        runs: Monitoring runs of one model, any order; drawn oldest first.
    """
    title = "Drift score per column and batch"
    ordered = sorted(runs, key=lambda run: (run.window_end, run.window_start))
    features = sorted({column for run in ordered for column in run.scores})
    if not features:
        return empty(title, "No column scores were logged for these batches.")
    cells = [
        {"batch": position, "column": column, "score": score, "window": batch_label(run)}
        for position, run in enumerate(ordered)
        for column, score in sorted(run.scores.items())
    ]
    days = json.dumps([f"{run.window_end:%m-%d}" for run in ordered])  # a literal: our dates
    heatmap = (
        layer("scores", cells)
        .mark_rect()
        .encode(
            x=alt.X(
                "batch:O",
                title="Batch window",
                axis=alt.Axis(labelExpr=f"{days}[datum.value]", labelAngle=0),
                scale=alt.Scale(domain=list(range(len(ordered)))),
            ),
            y=alt.Y("column:N", sort=features, title=None),
            color=alt.Color("score:Q", scale=alt.Scale(scheme=CONTINUOUS_SCHEME), title="Score"),
            tooltip=[
                alt.Tooltip("column:N", title="Column"),
                alt.Tooltip("window:N", title="Batch"),
                alt.Tooltip("score:Q", title="Score", format=".4g"),
            ],
        )
    )
    return titled(heatmap, title, max(CHART_HEIGHT, 120 + 22 * len(features)))


def feature_distribution(feature: FeatureDrift, ecdf: bool = False) -> alt.TopLevelMixin:
    """One column's reference against current distribution, as shares of each sample.

    Numeric columns are overlaid histograms over the summary's bins (or, with ``ecdf``, the
    two cumulative distributions); categorical columns are side-by-side bars per category.
    The one layer is named ``histogram``, ``ecdf`` or ``bars``.

    Args:
        feature: The column's drift result, with its histogram.
        ecdf: For a numeric column, draw cumulative distributions instead of histograms.
    """
    verdict = "drifted" if feature.drifted else "no drift"
    title = f"{feature.column}: reference vs current ({verdict})"
    histogram = feature.histogram
    if not histogram.labels or not (sum(histogram.reference) or sum(histogram.current)):
        return empty(title, "No histogram was stored for this column.")
    numeric = feature.kind == NUMERIC and len(histogram.edges) == len(histogram.labels) + 1
    samples = _samples(histogram)
    color = alt.Color(
        "sample:N",
        title=None,
        scale=alt.Scale(
            domain=[name for name, _ in samples], range=[REFERENCE_COLOR, CURRENT_COLOR]
        ),
        legend=alt.Legend(orient="bottom"),
    )
    share = alt.Y("share:Q", title="Share of rows", axis=alt.Axis(format=".0%"))
    if numeric and ecdf:
        chart = _ecdf(histogram, feature.column).encode(y=share, color=color)
    elif numeric:
        chart = _overlaid(histogram, feature.column).encode(y=share, y2=alt.datum(0), color=color)
    else:
        chart = _side_by_side(histogram, feature.column).encode(y=share, color=color)
    return titled(chart, title)


def batch_label(run: MonitoringRun) -> str:
    """A batch for menus: its window, version and alias, and its drift share (plain text)."""
    alias = f" @{run.alias}" if run.alias else ""
    return (
        f"{run.window_start:%Y-%m-%d} → {run.window_end:%Y-%m-%d} · v{run.version}{alias}"
        f" · {run.drift_share:.0%} drifted"
    )


# -- helpers ---------------------------------------------------------------------------------------


def _by_alias(runs: Sequence[MonitoringRun]) -> dict[str, list[MonitoringRun]]:
    groups: dict[str, list[MonitoringRun]] = {}
    for run in sorted(runs, key=lambda r: (r.window_end, r.window_start)):
        groups.setdefault(run.alias, []).append(run)
    return groups


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def _samples(histogram: Histogram) -> tuple[tuple[str, Sequence[int]], ...]:
    """(legend name, counts) of the reference and the current sample, in the colours' order."""
    return (
        (f"Reference ({sum(histogram.reference):,} rows)", histogram.reference),
        (f"Current ({sum(histogram.current):,} rows)", histogram.current),
    )


def _overlaid(histogram: Histogram, column: str) -> alt.Chart:
    rows = [
        {"sample": name, "from": low, "to": high, "share": share, "bin": label, "rows": count}
        for name, counts in _samples(histogram)
        for (low, high), share, label, count in zip(
            pairwise(histogram.edges), _shares(counts), histogram.labels, counts, strict=True
        )
    ]
    chart: alt.Chart = (
        layer("histogram", rows)
        .mark_rect(opacity=OVERLAY_OPACITY)
        .encode(
            x=alt.X("from:Q", title=column, scale=alt.Scale(zero=False)),
            x2="to:Q",
            tooltip=[
                alt.Tooltip("sample:N", title="Sample"),
                alt.Tooltip("bin:N", title="Bin"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
                alt.Tooltip("rows:Q", title="Rows", format=","),
            ],
        )
    )
    return chart


def _ecdf(histogram: Histogram, column: str) -> alt.Chart:
    rows = [
        {"sample": name, "edge": edge, "share": share}
        for name, counts in _samples(histogram)
        for edge, share in zip(histogram.edges, [0.0, *accumulate(_shares(counts))], strict=True)
    ]
    chart: alt.Chart = (
        layer("ecdf", rows)
        .mark_line(interpolate="step-after", strokeWidth=2)
        .encode(
            x=alt.X("edge:Q", title=column, scale=alt.Scale(zero=False)),
            tooltip=[
                alt.Tooltip("sample:N", title="Sample"),
                alt.Tooltip("edge:Q", title="At most", format=".4g"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
            ],
        )
    )
    return chart


def _side_by_side(histogram: Histogram, column: str) -> alt.Chart:
    rows = [
        {"sample": name, "category": label, "share": share, "rows": count}
        for name, counts in _samples(histogram)
        for label, share, count in zip(histogram.labels, _shares(counts), counts, strict=True)
    ]
    chart: alt.Chart = (
        layer("bars", rows)
        .mark_bar()
        .encode(
            x=alt.X("category:N", title=column, sort=list(histogram.labels)),
            xOffset="sample:N",
            tooltip=[
                alt.Tooltip("sample:N", title="Sample"),
                alt.Tooltip("category:N", title="Value"),
                alt.Tooltip("share:Q", title="Share", format=".1%"),
                alt.Tooltip("rows:Q", title="Rows", format=","),
            ],
        )
    )
    return chart
