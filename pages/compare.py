"""Compare: 2 to 100 runs side by side.

Shows the runs' params (only those that differ, by default), their metrics with the best value
of each marked, metric histories on one chart per metric, charts across runs (parallel
coordinates, scatter, box plot), and a registered model's metric across its versions.

Used by ML engineers choosing between the runs of a sweep or across experiments. Every choice
is in the URL (``?run_ids=…&run_ids=…&metrics=…``), so the link reproduces the view.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NoReturn

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError, NotFound
from services.core.formatting import escape_markdown
from services.core.links import RUNS_PAGE, X_AXES, CompareView
from services.core.records import Run
from services.experiments import chart_data, charts, compare, version_metrics
from services.experiments.history import history_series, non_finite_points
from services.experiments.history_chart import history_chart

X_AXIS_LABELS = {"step": "Step", "wall": "Wall time", "relative": "Relative time"}
LAST_QUERY_KEY = "compare.last_query"
WIDGET_KEYS = (
    "compare.only_differences",
    "compare.lower_is_better",
    "compare.metrics",
    "compare.x_axis",
    "compare.smoothing",
    "compare.log_scale",
    "compare.parallel_metric",
    "compare.scatter_x",
    "compare.scatter_y",
    "compare.box_metric",
    "compare.box_group",
    "compare.across_runs",
    "version_metrics.version_trend",
    "compare.model",
    "compare.trend_metric",
)

settings = cache.settings()
query = cache.read_query()
if st.session_state.get(LAST_QUERY_KEY) != query:
    # A new link was opened in this session: its URL wins over the widgets' previous state.
    for widget_key in WIDGET_KEYS:
        st.session_state.pop(widget_key, None)
view = CompareView.from_query(query)


def fetch_run(run_id: str) -> Run:
    """A run from the bulk read when it has it; else one read, which names a missing run."""
    return prefetched.get(run_id) or cache.run(settings, run_id)


def ask_for_runs(message: str) -> NoReturn:
    st.info(message, icon=":material/compare_arrows:")
    st.page_link(RUNS_PAGE, label="Pick runs on the Runs page", icon=":material/table_rows:")
    st.stop()


@st.dialog("Link to this comparison")
def show_link(url: str) -> None:
    """On request: a code block loads a 1.5 MB highlighter, which would slow the first render."""
    st.caption("It opens the comparison with every choice on this page.")
    st.code(url, language=None, wrap_lines=True)


st.title("Compare runs")
if len(view.run_ids) < compare.MIN_RUNS:
    ask_for_runs(
        "Choose at least two runs to compare: select them on the Runs page, or open a "
        "compare link (`?run_ids=…&run_ids=…`)."
    )

progress = st.progress(0.0, text="Loading runs…")
try:
    prefetched = cache.runs_by_id(settings, view.run_ids[: compare.MAX_RUNS])
    loaded = compare.load_runs(
        view.run_ids,
        fetch_run,
        on_progress=lambda done, total: progress.progress(
            done / total, text=f"Loading runs… {done} of {total}"
        ),
    )
except FlightdeckError as exc:
    progress.empty()
    st.error(escape_markdown(str(exc)))
    st.stop()
progress.empty()

if loaded.missing:
    linked = len(loaded.runs) + len(loaded.missing)
    st.warning(
        f"Not found or deleted, so left out ({len(loaded.missing)} of {linked} run ids in the "
        "link): " + ", ".join(escape_markdown(run_id) for run_id in loaded.missing),
        icon=":material/search_off:",
    )
if loaded.truncated:
    st.warning(
        f"Only the first {compare.MAX_RUNS} runs are compared; {loaded.truncated} more in the "
        "link are left out."
    )
runs = loaded.runs
if len(runs) < compare.MIN_RUNS:
    ask_for_runs("Fewer than two of the linked runs exist, so there is nothing to compare.")

run_ids = tuple(run.run_id for run in runs)
labels = compare.run_labels(runs)
experiments = compare.experiment_ids(runs)
st.caption(
    f"{len(runs)} runs from {len(experiments)} experiment{'s' if len(experiments) != 1 else ''}"
)
st.dataframe(
    compare.runs_overview(runs),
    hide_index=True,
    key="compare.runs",
    column_config={
        compare.RUN_COLUMN: st.column_config.TextColumn(pinned=True),
        compare.LINK_COLUMN: st.column_config.LinkColumn(display_text="Open run"),
        "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss [UTC]"),
        "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
    },
)
link_slot = st.container()  # filled last, once every widget has had its say

# -- params --------------------------------------------------------------------------------------

st.subheader("Params")
only_differences = st.toggle(
    "Only differences", value=not view.all_params, key="compare.only_differences"
)
view = replace(view, all_params=not only_differences)
params = compare.params_table(runs, only_differences)
if not compare.param_names(runs):
    st.info("These runs logged no params.")
elif params.empty:
    st.info("Every param has the same value in every run. Turn off “Only differences” to see them.")
else:
    st.dataframe(
        params,
        hide_index=True,
        key="compare.params",
        column_config={compare.PARAM_COLUMN: st.column_config.TextColumn(pinned=True)},
    )

# -- metrics -------------------------------------------------------------------------------------

st.subheader("Metrics")
metrics = compare.metric_names(runs)
if not metrics:
    st.info("These runs logged no metrics.")
else:
    lower = st.multiselect(
        "Lower is better for",
        metrics,
        default=compare.lower_is_better_metrics(metrics, view),
        key="compare.lower_is_better",
        help="Guessed from the name (loss, error, rmse, mae, mse, perplexity are better lower); "
        "every other metric is better higher. Change it here for this comparison.",
    )
    view = compare.with_directions(view, metrics, lower)
    comparison = compare.compare_metrics(runs, view)
    st.dataframe(
        charts.highlight_best(comparison, runs),
        hide_index=True,
        key="compare.metrics_table",
        column_config={compare.METRIC_COLUMN: st.column_config.TextColumn(pinned=True)},
    )
    st.caption("The best value of each metric is highlighted; NaN and ±inf never count as best.")

# -- metric histories ----------------------------------------------------------------------------

st.subheader("Metric histories")
shown_metrics = [m for m in view.metrics if m in metrics] or (
    [] if view.metrics else compare.suggested_history_metrics(runs)
)
chosen_metrics = st.multiselect(
    "Metrics", metrics, default=shown_metrics, key="compare.metrics", placeholder="Pick metrics"
)
view = replace(view, metrics=tuple(chosen_metrics))
axis_column, smoothing_column, log_column = st.columns([2, 2, 1], vertical_alignment="bottom")
x_axis = axis_column.radio(
    "X-axis",
    X_AXES,
    index=X_AXES.index(view.x_axis) if view.x_axis in X_AXES else 0,
    format_func=X_AXIS_LABELS.__getitem__,
    horizontal=True,
    key="compare.x_axis",
)
smoothing = smoothing_column.slider(
    "Smoothing", 0.0, 0.99, value=view.smoothing, step=0.01, key="compare.smoothing"
)
log_scale = log_column.toggle("Log scale", value=view.log_scale, key="compare.log_scale")
view = replace(view, x_axis=x_axis, smoothing=smoothing, log_scale=log_scale)

if not chosen_metrics:
    st.caption("Pick metrics to chart their histories across the runs.")
colors = charts.run_colors(run_ids)
chart_columns = st.columns(2)
chart_slots = {}
for index, metric in enumerate(chosen_metrics):
    with chart_columns[index % 2]:
        chart_slots[metric] = st.empty()
        chart_slots[metric].info(f"Loading the history of {escape_markdown(metric)}…", icon="⏳")
# Every metric is fetched at once; each chart is drawn as soon as its histories are in.
for metric, fetched in cache.history_reader(settings).as_ready(runs, chosen_metrics):
    with chart_slots[metric].container():
        if isinstance(fetched, FlightdeckError):
            st.error(escape_markdown(str(fetched)))
            continue
        series = history_series(fetched, x_axis, smoothing)
        st.altair_chart(
            history_chart(metric, series, labels, colors, x_axis, log_scale),
            key=f"compare.history.{metric}",
        )
        if dropped := non_finite_points(fetched):
            st.caption(f"{dropped} NaN or infinite value{'s' if dropped != 1 else ''} not drawn.")

# -- charts across runs --------------------------------------------------------------------------

st.subheader("Charts across runs")
across_runs = st.toggle(
    "Show parallel coordinates, scatter and box plot",
    value=view.across_runs,
    key="compare.across_runs",
    help="Drawn on request, so the page opens faster.",
)
view = replace(view, across_runs=across_runs)
if across_runs:
    frame = chart_data.chart_frame(runs)
    choices = chart_data.chart_choices(view, frame)
    metric_columns = chart_data.metric_columns(frame)
    param_columns = chart_data.param_columns(frame)
    parallel_tab, scatter_tab, box_tab = st.tabs(["Parallel coordinates", "Scatter", "Box plot"])

    with parallel_tab:
        if not metric_columns:
            st.info("These runs logged no metrics.")
        else:
            parallel_metric = st.selectbox(
                "Metric",
                metric_columns,
                index=metric_columns.index(choices.parallel_metric),
                key="compare.parallel_metric",
            )
            view = replace(
                view,
                parallel_metric=compare.keep_implicit(
                    view.parallel_metric,
                    chart_data.bare_name(parallel_metric),
                    chart_data.bare_name(choices.parallel_metric),
                ),
            )
            if not choices.parallel_params:
                st.caption("No param differs between these runs: only the metric's axis is drawn.")
            st.plotly_chart(
                charts.parallel_coordinates(
                    frame,
                    choices.parallel_params,
                    parallel_metric,
                    compare.lower_is_better(chart_data.bare_name(parallel_metric), view),
                ),
                key="compare.parallel",
            )

    with scatter_tab:
        axes = param_columns + metric_columns
        if not axes:
            st.info("These runs logged no params or metrics.")
        else:
            x_column, y_column = st.columns(2)
            scatter_x = x_column.selectbox(
                "X", axes, index=axes.index(choices.scatter_x), key="compare.scatter_x"
            )
            scatter_y = y_column.selectbox(
                "Y", axes, index=axes.index(choices.scatter_y), key="compare.scatter_y"
            )
            view = replace(
                view,
                scatter_x=compare.keep_implicit(view.scatter_x, scatter_x, choices.scatter_x),
                scatter_y=compare.keep_implicit(view.scatter_y, scatter_y, choices.scatter_y),
            )
            st.plotly_chart(
                charts.scatter_chart(frame, scatter_x, scatter_y), key="compare.scatter"
            )

    with box_tab:
        if not metric_columns or not param_columns:
            st.info("A box plot needs runs with at least one metric and one param.")
        else:
            metric_column, group_column = st.columns(2)
            box_metric = metric_column.selectbox(
                "Metric",
                metric_columns,
                index=metric_columns.index(choices.box_metric),
                key="compare.box_metric",
            )
            box_group = group_column.selectbox(
                "Group by",
                param_columns,
                index=param_columns.index(choices.box_group),
                key="compare.box_group",
            )
            view = replace(
                view,
                box_metric=compare.keep_implicit(
                    view.box_metric,
                    chart_data.bare_name(box_metric),
                    chart_data.bare_name(choices.box_metric),
                ),
                box_group=compare.keep_implicit(view.box_group, box_group, choices.box_group),
            )
            st.plotly_chart(charts.box_chart(frame, box_metric, box_group), key="compare.box")


# -- metric trend across the versions of a registered model --------------------------------------

st.subheader("Metric trend across model versions")
version_trend = st.toggle(
    "Show a metric across the versions of a registered model",
    value=view.version_trend,
    key="version_metrics.version_trend",
)
view = replace(view, version_trend=version_trend)
if version_trend:
    try:
        with st.spinner("Finding registered models trained in these experiments…"):
            related_models = version_metrics.models_for_experiments(
                cache.model_versions(settings, ""), experiments, fetch_run
            )
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        related_models = []
    model_options = related_models + ([view.model] if view.model not in related_models else [])
    model_options = [name for name in model_options if name]
    model = st.selectbox(
        "Registered model",
        model_options,
        index=model_options.index(view.model) if view.model else (0 if model_options else None),
        accept_new_options=True,
        placeholder="Type a registered model's name",
        key="compare.model",
        help="Models with a version trained in these runs' experiments. Type another name to "
        "see any registered model.",
    )
    default_model = related_models[0] if related_models and not view.model else ""
    view = replace(view, model=compare.keep_implicit(view.model, model or "", default_model))

    if model:
        try:
            with st.spinner("Loading the model's versions…"):
                versions = cache.versions_of(settings, model)
                aliases = cache.model_aliases(settings, model)
                sources = compare.load_runs(
                    version_metrics.version_source_run_ids(versions), fetch_run
                )
        except NotFound:
            st.info(f"No registered model is named “{escape_markdown(model)}”.")
        except FlightdeckError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            trend_metrics = compare.metric_names(sources.runs)
            if not versions:
                st.info(f"“{escape_markdown(model)}” has no versions yet.")
            elif not trend_metrics:
                st.info("The runs these versions were registered from logged no metrics.")
            else:
                default_trend = version_metrics.trend_metric_default(
                    sources.runs, [*chosen_metrics, *metrics]
                )
                preferred = view.trend_metric or default_trend
                trend_metric = st.selectbox(
                    "Metric",
                    trend_metrics,
                    index=trend_metrics.index(preferred) if preferred in trend_metrics else 0,
                    key="compare.trend_metric",
                )
                view = replace(
                    view,
                    trend_metric=compare.keep_implicit(
                        view.trend_metric, trend_metric, default_trend
                    ),
                )
                trend = version_metrics.version_trend(versions, sources.runs, trend_metric, aliases)
                st.plotly_chart(
                    charts.version_trend_chart(model, trend_metric, trend), key="compare.trend"
                )
                st.caption(
                    "Each version's value is its source run's metric. Stars mark the versions the "
                    "aliases point at now."
                )
    elif not related_models:
        st.caption("No registered model has a version trained in these runs' experiments.")


# -- the link that reproduces this view ----------------------------------------------------------

query = view.to_query()
cache.write_query(query)
st.session_state[LAST_QUERY_KEY] = cache.read_query()
with link_slot:
    if st.button("Copy link", icon=":material/link:", key="compare.copy_link"):
        show_link(cache.share_url(query))
