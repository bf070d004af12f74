"""Pure plotly builders for drift monitoring, and the status colours.

Drift over time (the share of drifted columns against the warning and alarm bands), a heatmap
of per-column scores by batch, and one column's reference-against-current distribution drawn
from the compact summary's histogram. The theme and palette are
:mod:`services.experiments.charts`'s.
Column names and category values are untrusted text: every one goes through
:func:`services.experiments.charts.plain` before it reaches a figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate, pairwise

import plotly.graph_objects as go

from services.experiments.charts import CONTINUOUS_SCALE, PALETTE, empty_chart, plain, themed
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


def status_color(level: str) -> str:
    """The colour of a drift status (grey for one not known)."""
    return STATUS_COLORS.get(level, STATUS_COLORS[UNKNOWN])


def drift_over_time(runs: Sequence[MonitoringRun], thresholds: DriftThresholds) -> go.Figure:
    """The share of drifted columns per batch, against the warning and alarm bands.

    One line per monitored alias, a point per batch at its window's end. An amber band spans
    ``warning_share`` to ``alarm_share`` and a red band ``alarm_share`` upwards. Where the
    version an alias points at changed between two batches, a marker names the change and a
    dotted line crosses the chart.

    Args:
        runs: Monitoring runs of one model, any order.
        thresholds: The configured warning and alarm shares.
    """
    title = "Share of drifted columns"
    if not runs:
        return empty_chart(title, "No monitoring batches in this time range.")
    figure = go.Figure()
    top = max(1.0, *(run.drift_share for run in runs))
    figure.add_hrect(
        y0=thresholds.warning_share,
        y1=thresholds.alarm_share,
        fillcolor=STATUS_COLORS[AMBER],
        opacity=BAND_OPACITY,
        line_width=0,
        layer="below",
        name="warning",
    )
    figure.add_hrect(
        y0=thresholds.alarm_share,
        y1=top,
        fillcolor=STATUS_COLORS[RED],
        opacity=BAND_OPACITY,
        line_width=0,
        layer="below",
        name="alarm",
    )
    for share, label in (
        (thresholds.warning_share, "warning"),
        (thresholds.alarm_share, "alarm"),
    ):
        figure.add_hline(
            y=share,
            line={"color": STATUS_COLORS[AMBER if label == "warning" else RED], "dash": "dash"},
            annotation_text=f"{label} {share:.0%}",
            annotation_position="top left",
            name=label,
        )
    changes: list[tuple[MonitoringRun, int]] = []
    for index, (alias, batches) in enumerate(_by_alias(runs).items()):
        name = plain(f"@{alias}") if alias else "(no alias)"
        figure.add_trace(
            go.Scatter(
                x=[run.window_end for run in batches],
                y=[run.drift_share for run in batches],
                mode="lines+markers",
                name=name,
                line={"color": PALETTE[index % len(PALETTE)], "width": 2},
                marker={"size": 8},
                customdata=[
                    [
                        f"{run.window_start:%Y-%m-%d} → {run.window_end:%Y-%m-%d}",
                        run.version,
                        run.drifted_columns,
                    ]
                    for run in batches
                ],
                hovertemplate=f"{name} v%{{customdata[1]}}<br>%{{customdata[0]}}<br>"
                "%{y:.0%} drifted (%{customdata[2]} columns)<extra></extra>",
            )
        )
        changes += [
            (later, earlier.version)
            for earlier, later in pairwise(batches)
            if later.version != earlier.version
        ]
    if changes:
        for run, _ in changes:
            figure.add_vline(
                x=run.window_end,
                line={"color": VERSION_COLOR, "width": 1, "dash": "dot"},
                layer="below",
            )
        figure.add_trace(
            go.Scatter(
                x=[run.window_end for run, _ in changes],
                y=[run.drift_share for run, _ in changes],
                mode="markers+text",
                text=[f"v{previous} → v{run.version}" for run, previous in changes],
                textposition="top center",
                name="Version changed",
                marker={"color": VERSION_COLOR, "size": 14, "symbol": "diamond"},
                hovertemplate="%{text}<extra>Version changed</extra>",
            )
        )
    figure.update_yaxes(title_text="Drifted columns", tickformat=".0%", range=[0, top * 1.05])
    figure.update_xaxes(title_text="Batch window end (UTC)")
    return themed(figure, title)


def drift_heatmap(runs: Sequence[MonitoringRun]) -> go.Figure:
    """Each column's drift score in each batch: a row per column, a column per batch window.

    Scores are what the column's method reports (a p-value for K-S, a distance for
    Wasserstein), so compare a row across batches rather than rows with each other. A column
    missing from a batch leaves a gap.

    Args:
        runs: Monitoring runs of one model, any order; drawn oldest first.
    """
    title = "Drift score per column and batch"
    ordered = sorted(runs, key=lambda run: (run.window_end, run.window_start))
    features = sorted({column for run in ordered for column in run.scores})
    if not features:
        return empty_chart(title, "No column scores were logged for these batches.")
    labels = [plain(batch_label(run)) for run in ordered]
    z = [[run.scores.get(feature) for run in ordered] for feature in features]
    figure = go.Figure(
        go.Heatmap(
            x=list(range(len(ordered))),
            y=[plain(feature) for feature in features],
            z=z,
            colorscale=CONTINUOUS_SCALE,
            colorbar={"title": {"text": "Score"}},
            customdata=[labels for _ in features],
            hovertemplate="%{y}<br>%{customdata}<br>score %{z:.4g}<extra></extra>",
            hoverongaps=False,
        )
    )
    figure.update_xaxes(
        title_text="Batch window",
        tickvals=list(range(len(ordered))),
        ticktext=[f"{run.window_end:%m-%d}" for run in ordered],
    )
    figure.update_yaxes(type="category", autorange="reversed")
    themed(figure, title)
    figure.update_layout(height=max(figure.layout.height, 120 + 22 * len(features)))
    return figure


def feature_distribution(feature: FeatureDrift, ecdf: bool = False) -> go.Figure:
    """One column's reference against current distribution, as shares of each sample.

    Numeric columns are overlaid histograms over the summary's bins (or, with ``ecdf``, the
    two cumulative distributions); categorical columns are side-by-side bars per category.

    Args:
        feature: The column's drift result, with its histogram.
        ecdf: For a numeric column, draw cumulative distributions instead of histograms.
    """
    verdict = "drifted" if feature.drifted else "no drift"
    title = f"{feature.column}: reference vs current ({verdict})"
    histogram = feature.histogram
    if not histogram.labels or not (sum(histogram.reference) or sum(histogram.current)):
        return empty_chart(title, "No histogram was stored for this column.")
    numeric = feature.kind == NUMERIC and len(histogram.edges) == len(histogram.labels) + 1
    if numeric and ecdf:
        figure = _ecdf(histogram)
    elif numeric:
        figure = _overlaid(histogram)
    else:
        figure = _side_by_side(histogram)
    figure.update_yaxes(title_text="Share of rows", tickformat=".0%")
    figure.update_xaxes(title_text=plain(feature.column))
    return themed(figure, title)


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


def _samples(histogram: Histogram) -> tuple[tuple[str, Sequence[int], str], ...]:
    return (
        (f"Reference ({sum(histogram.reference):,} rows)", histogram.reference, REFERENCE_COLOR),
        (f"Current ({sum(histogram.current):,} rows)", histogram.current, CURRENT_COLOR),
    )


def _overlaid(histogram: Histogram) -> go.Figure:
    edges = histogram.edges
    centres = [(low + high) / 2 for low, high in pairwise(edges)]
    widths = [high - low for low, high in pairwise(edges)]
    labels = [plain(label) for label in histogram.labels]
    figure = go.Figure()
    for name, counts, color in _samples(histogram):
        figure.add_trace(
            go.Bar(
                x=centres,
                y=_shares(counts),
                width=widths,
                name=name,
                marker={"color": color},
                opacity=OVERLAY_OPACITY,
                customdata=[[label, count] for label, count in zip(labels, counts, strict=True)],
                hovertemplate="%{customdata[0]}<br>%{y:.1%} (%{customdata[1]:,} rows)"
                f"<extra>{name}</extra>",
            )
        )
    figure.update_layout(barmode="overlay", bargap=0)
    return figure


def _ecdf(histogram: Histogram) -> go.Figure:
    figure = go.Figure()
    for name, counts, color in _samples(histogram):
        cumulative = [0.0, *accumulate(_shares(counts))]
        figure.add_trace(
            go.Scatter(
                x=list(histogram.edges),
                y=cumulative,
                mode="lines",
                line={"color": color, "width": 2, "shape": "hv"},
                name=name,
                hovertemplate=f"≤ %{{x:.4g}}: %{{y:.1%}}<extra>{name}</extra>",
            )
        )
    return figure


def _side_by_side(histogram: Histogram) -> go.Figure:
    labels = [plain(label) for label in histogram.labels]
    figure = go.Figure()
    for name, counts, color in _samples(histogram):
        figure.add_trace(
            go.Bar(
                x=labels,
                y=_shares(counts),
                name=name,
                marker={"color": color},
                customdata=list(counts),
                hovertemplate=f"%{{x}}<br>%{{y:.1%}} (%{{customdata:,}} rows)<extra>{name}</extra>",
            )
        )
    figure.update_layout(barmode="group")
    figure.update_xaxes(type="category")
    return figure
