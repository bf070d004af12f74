"""Pure plotly builders: records and frames in, ``plotly.graph_objects.Figure`` out.

The palette and the chart theme are defined here once; pages never pick colours. Text from
MLflow (run names, param values, model names) is HTML-escaped before it reaches a figure,
because plotly renders a subset of HTML in labels: untrusted text stays text.
"""

from __future__ import annotations

import html
import math
import tomllib
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
from pandas.io.formats.style import Styler

from services.core.records import CURRENT_HOLDER, AliasMove, Run
from services.core.settings import PROJECT_ROOT
from services.experiments.compare import MetricsComparison, best_cell_mask, run_labels
from services.experiments.history import is_finite_value
from services.experiments.version_metrics import VersionMetric

# -- theme: every colour and layout default, once ------------------------------------------------


def _app_theme() -> dict[str, str]:
    """The app's ``[theme]`` from ``.streamlit/config.toml``: exports use the same colours."""
    try:
        with (PROJECT_ROOT / ".streamlit" / "config.toml").open("rb") as handle:
            return {k: str(v) for k, v in tomllib.load(handle).get("theme", {}).items()}
    except (OSError, tomllib.TOMLDecodeError):
        return {}


APP_THEME = _app_theme()
"""Streamlit's theme (``primaryColor``, ``textColor``, ...), for documents Flightdeck writes."""

PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#E45756",
    "#72B7B2",
    "#B279A2",
    "#EECA3B",
    "#9D755D",
    "#FF9DA6",
    "#BAB0AC",
)
"""Run colours, in run order (Vega's Tableau 10); cycles beyond ten runs."""
CONTINUOUS_SCALE = "Viridis"
"""Colour scale for a metric on a continuous axis; its bright end is the better value."""
ALIAS_COLOR = "#E45756"
"""Markers for versions an alias points at."""
RAW_LINE_OPACITY = 0.25
"""The unsmoothed line behind a smoothed one."""
BEST_CELL_STYLE = "background-color: rgba(84, 162, 75, 0.30); font-weight: 600"
"""CSS for a table cell holding a metric's best value."""
CHART_HEIGHT = 380
"""Pixels; one height for every chart so grids line up."""
LEGEND_BELOW_MAX_ENTRIES = 6
"""Up to this many runs the legend sits below a chart; more go in a column beside it."""
MUTED_TEXT_COLOR = "#808495"
"""Notes inside a chart, such as why it is empty."""
MISSING_LABEL = "(none)"
"""How a missing param value is labelled on an axis."""

_LAYOUT: dict[str, Any] = {
    "height": CHART_HEIGHT,
    "margin": {"l": 10, "r": 10, "t": 48, "b": 10},
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
    "hoverlabel": {"namelength": -1},
}


def run_colors(run_ids: Sequence[str]) -> dict[str, str]:
    """A colour per run, in order, so a run looks the same in every chart of a page."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def plain(text: object) -> str:
    """Untrusted text for a figure: HTML-escaped so plotly shows it literally."""
    return html.escape(str(text), quote=False)


def themed(figure: go.Figure, title: str) -> go.Figure:
    """Apply the one chart theme and an escaped title; every builder ends here."""
    figure.update_layout(title={"text": plain(title)}, **_LAYOUT)
    return figure


def empty_chart(title: str, message: str) -> go.Figure:
    """A figure with no data that says why, instead of blank axes."""
    figure = go.Figure()
    figure.add_annotation(
        text=plain(message), showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return themed(figure, title)


# -- charts across runs --------------------------------------------------------------------------


def parallel_coordinates(
    frame: pd.DataFrame, params: Sequence[str], metric: str, lower_is_better: bool = False
) -> go.Figure:
    """Params → a metric, one line per run, coloured by the metric (bright is better).

    Numeric params get a numeric axis; text params (and numeric ones with gaps) are mapped to
    ticks, one per value. Runs without a finite value of the metric are left out.

    Args:
        frame: From :func:`services.experiments.chart_data.chart_frame`.
        params: The ``params.*`` columns to show, left to right.
        metric: The ``metrics.*`` column the lines end on.
        lower_is_better: Reverse the colour scale so the better runs stay bright.
    """
    title = f"Params → {metric}"
    if not metric:
        return empty_chart(title, "These runs logged no metrics.")
    rows = frame[_finite(frame[metric])]
    if rows.empty:
        return empty_chart(title, f"No run has a finite value of {metric}.")
    dimensions = [_dimension(rows[column], column) for column in params]
    dimensions.append({"label": plain(metric), "values": rows[metric].tolist()})
    figure = go.Figure(
        go.Parcoords(
            dimensions=dimensions,
            line={
                "color": rows[metric].tolist(),
                "colorscale": CONTINUOUS_SCALE,
                "reversescale": lower_is_better,
                "showscale": True,
            },
        )
    )
    themed(figure, title)
    figure.update_layout(margin={"l": 70, "r": 70, "t": 110, "b": 30})  # room for axis labels
    return figure


def _dimension(values: pd.Series, column: str) -> dict[str, Any]:
    """A parcoords axis: numeric as is, anything else (or with gaps) as one tick per value."""
    if pd.api.types.is_numeric_dtype(values) and values.notna().all():
        return {"label": plain(column), "values": values.tolist()}
    texts = [_category(v) for v in values]
    categories = sorted(set(texts), key=_category_order)
    codes = {category: code for code, category in enumerate(categories)}
    return {
        "label": plain(column),
        "values": [codes[t] for t in texts],
        "tickvals": list(range(len(categories))),
        "ticktext": [plain(c) for c in categories],
    }


def scatter_chart(frame: pd.DataFrame, x: str, y: str, label_column: str = "Run") -> go.Figure:
    """Any param or metric against any other, one point per run, hover names the run.

    Text columns become categorical axes; rows with NaN or ±inf in a numeric column are left
    out, since they have no place on the axis.
    """
    title = f"{y} vs {x}"
    if not x or not y:
        return empty_chart(title, "Pick a column for each axis.")
    rows = frame[_drawable(frame[x]) & _drawable(frame[y])]
    if rows.empty:
        return empty_chart(title, "No run has finite values on both axes.")
    figure = go.Figure(
        go.Scatter(
            x=_axis_values(rows[x]),
            y=_axis_values(rows[y]),
            mode="markers",
            text=[plain(label) for label in rows[label_column]],
            marker={"color": PALETTE[0], "size": 10, "line": {"width": 1, "color": "white"}},
            hovertemplate="%{text}<br>x: %{x}<br>y: %{y}<extra></extra>",
        )
    )
    figure.update_xaxes(title_text=plain(x))
    figure.update_yaxes(title_text=plain(y))
    return themed(figure, title)


def box_chart(frame: pd.DataFrame, metric: str, group: str, label_column: str = "Run") -> go.Figure:
    """A metric's spread per value of a param, every run shown as a point.

    Runs without a finite value of the metric are left out; a missing param value forms its
    own group, labelled :data:`MISSING_LABEL`.
    """
    title = f"{metric} by {group}"
    if not metric or not group:
        return empty_chart(title, "Pick a metric and a param to group by.")
    rows = frame[_finite(frame[metric])]
    if rows.empty:
        return empty_chart(title, f"No run has a finite value of {metric}.")
    groups = [_category(v) for v in rows[group]]
    figure = go.Figure()
    for index, category in enumerate(sorted(set(groups), key=_category_order)):
        members = [g == category for g in groups]
        figure.add_trace(
            go.Box(
                y=rows[metric][members].tolist(),
                name=plain(category),
                text=[plain(label) for label in rows[label_column][members]],
                boxpoints="all",
                jitter=0.3,
                pointpos=0,
                marker={"color": PALETTE[index % len(PALETTE)]},
                hovertemplate="%{text}: %{y:.4g}<extra></extra>",
            )
        )
    figure.update_layout(showlegend=False)
    figure.update_xaxes(title_text=plain(group), type="category")
    figure.update_yaxes(title_text=plain(metric))
    return themed(figure, title)


# -- model versions ------------------------------------------------------------------------------


def version_trend_chart(model: str, metric: str, trend: Sequence[VersionMetric]) -> go.Figure:
    """A metric across a model's versions, with each current alias holder marked "@alias".

    Args:
        model: The registered model's name, for the title.
        metric: The metric's name.
        trend: One point per version, oldest first, from
            :func:`services.experiments.version_metrics.version_trend`; a missing or non-finite
            value
            leaves a gap.
    """
    title = f"{metric} across versions of {model}"
    versions = [point.version for point in trend]
    aliases = [point.aliases for point in trend]
    points = [_finite_or_none(point.value) for point in trend]
    if all(v is None for v in points):
        return empty_chart(title, f"No version's source run has a finite value of {metric}.")
    figure = go.Figure(
        go.Scatter(
            x=list(versions),
            y=points,
            mode="lines+markers",
            name=plain(metric),
            line={"color": PALETTE[0], "width": 2},
            marker={"size": 8},
            hovertemplate="v%{x}: %{y:.4g}<extra></extra>",
        )
    )
    held = [
        (version, value, " ".join(f"@{a}" for a in names))
        for version, value, names in zip(versions, points, aliases, strict=True)
        if names and value is not None
    ]
    if held:
        figure.add_trace(
            go.Scatter(
                x=[version for version, _, _ in held],
                y=[value for _, value, _ in held],
                mode="markers+text",
                text=[plain(label) for _, _, label in held],
                textposition="top center",
                name="Alias holders",
                marker={"color": ALIAS_COLOR, "size": 14, "symbol": "star"},
                hovertemplate="v%{x} %{text}: %{y:.4g}<extra></extra>",
            )
        )
    figure.update_xaxes(
        title_text="Version",
        tickvals=list(versions),
        ticktext=[f"v{v}" for v in versions],
    )
    figure.update_yaxes(title_text=plain(metric))
    return themed(figure, title)


VERSION_TICKS_MAX = 30
"""Past this many versions, the x-axis labels only some (500 labels took the browser 17 s)."""


def version_metric_chart(
    points: Sequence[tuple[int, float]], metric: str, alias_moves: Sequence[AliasMove]
) -> go.Figure:
    """A metric across a model's versions, with each alias move marked where it landed.

    Each move draws a dotted vertical line at the version the alias moved to (for a removal,
    the version it left) and a labelled marker: "@champion 2026-11-20", or "@champion (current)"
    when only the present holder is known. The hover adds who moved it and why. The builder
    does not care where the moves come from: the registry's present state or the audit log.

    Args:
        points: (version, value of the version's source run), any order; NaN and ±inf are
            left out.
        metric: The metric's name, for the title and the y-axis.
        alias_moves: The moves to mark, any order.
    """
    title = f"{metric} across versions"
    drawn = sorted((v, y) for v, y in points if is_finite_value(y))
    marks = _alias_marks(alias_moves)
    if not drawn and not marks:
        return empty_chart(title, f"No version's source run has a finite value of {metric}.")
    values = dict(drawn)
    figure = go.Figure(
        go.Scatter(
            x=[v for v, _ in drawn],
            y=[y for _, y in drawn],
            mode="lines+markers",
            name=plain(metric),
            line={"color": PALETTE[0], "width": 2},
            marker={"size": 8},
            hovertemplate="v%{x}: %{y:.4g}<extra></extra>",
        )
    )
    top = max(values.values(), default=0.0)
    for version in marks:
        figure.add_vline(
            x=version, line={"color": ALIAS_COLOR, "width": 1, "dash": "dot"}, layer="below"
        )
    if marks:
        figure.add_trace(
            go.Scatter(
                x=list(marks),
                y=[values.get(version, top) for version in marks],
                mode="markers+text",
                text=["<br>".join(label for label, _ in marks[v]) for v in marks],
                hovertext=["<br>".join(hover for _, hover in marks[v]) for v in marks],
                hoverinfo="text",
                textposition="top center",
                name="Alias moves",
                marker={"color": ALIAS_COLOR, "size": 14, "symbol": "star"},
            )
        )
    versions = sorted({*values, *marks})
    if len(versions) <= VERSION_TICKS_MAX:
        figure.update_xaxes(tickvals=versions, ticktext=[f"v{v}" for v in versions])
    else:  # one label per version would stall the browser: plotly picks the ticks
        figure.update_xaxes(tickprefix="v", tickformat="d")
    figure.update_xaxes(title_text="Version")
    figure.update_yaxes(title_text=plain(metric))
    return themed(figure, title)


def _alias_marks(moves: Sequence[AliasMove]) -> dict[int, list[tuple[str, str]]]:
    """Version → (label, hover text) of each move that landed on (or, removed, left) it."""
    marks: dict[int, list[tuple[str, str]]] = {}
    for move in sorted(moves, key=lambda m: m.at):
        version = move.version if move.version is not None else move.previous
        if version is None:
            continue
        alias = plain(f"@{move.alias}")
        if move.reason == CURRENT_HOLDER:
            label = f"{alias} (current)"
            hover = f"{alias} points at v{version} now"
        else:
            when = f"{move.at:%Y-%m-%d}"
            removed = move.version is None
            label = f"{alias} removed {when}" if removed else f"{alias} {when}"
            if removed:
                hover = f"{alias} removed from v{version}"
            elif move.previous is not None:
                hover = f"{alias} moved from v{move.previous} to v{version}"
            else:
                hover = f"{alias} set to v{version}"
            hover += f" on {move.at:%Y-%m-%d %H:%M} UTC"
            if move.actor:
                hover += f" by {plain(move.actor)}"
            if move.external:
                hover += " outside Flightdeck"
            if move.reason:
                hover += f": {plain(move.reason)}"
        marks.setdefault(version, []).append((label, hover))
    return marks


# -- tables ----------------------------------------------------------------------------------------


def highlight_best(comparison: MetricsComparison, runs: Sequence[Run]) -> Styler:
    """The metrics table styled for display: best values highlighted, 4 significant digits."""
    mask = best_cell_mask(comparison, runs)

    def styles(frame: pd.DataFrame) -> pd.DataFrame:
        return mask.map(lambda best: BEST_CELL_STYLE if best else "").reindex_like(frame)

    values = list(run_labels(runs).values())
    return comparison.table.style.apply(styles, axis=None).format(
        "{:.4g}", subset=values, na_rep=""
    )


# -- helpers ---------------------------------------------------------------------------------------


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and is_finite_value(value) else None


def _finite(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.Series([is_finite_value(v) for v in numbers], index=values.index, dtype=bool)


def _drawable(values: pd.Series) -> pd.Series:
    """Numeric values must be finite; text values are always drawable (missing → a label)."""
    if pd.api.types.is_numeric_dtype(values):
        return _finite(values)
    return pd.Series(True, index=values.index, dtype=bool)


def _axis_values(values: pd.Series) -> list[Any]:
    if pd.api.types.is_numeric_dtype(values):
        return list(values.tolist())
    return [plain(_category(v)) for v in values]


def _category(value: object) -> str:
    """A value as a category label; missing (None, NaN) becomes :data:`MISSING_LABEL`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_LABEL
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _category_order(label: str) -> tuple[int, float, str]:
    """Numbers first in numeric order, then text, then the missing label."""
    if label == MISSING_LABEL:
        return (2, 0.0, label)
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)
