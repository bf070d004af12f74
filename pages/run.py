"""Run: one MLflow run in detail, opened as ``run?run_id=<32 hex digits>``.

Used by ML engineers and reviewers who need to know what a run did: its status and timing, its
parent and child runs, every metric with its min and max, params, tags, input datasets, the
model versions registered from it, and its artifacts with a size-capped preview. Everything
that comes from MLflow is shown as plain text: tables, code blocks, or escaped Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError, NotFound
from services.core.formatting import escape_heading, escape_markdown, mlflow_run_url
from services.core.links import RUN_PAGE, RUNS_PAGE
from services.core.records import Run
from services.experiments.artifacts import (
    DOWNLOAD_MIME,
    ArtifactPreview,
    PreviewKind,
    PreviewPlan,
    artifact_table,
    build_artifact_tree,
    build_preview,
    human_size,
    mlflow_artifact_url,
    plan_preview,
)
from services.experiments.run_detail import (
    CHILD_RUNS_MAX,
    child_runs_table,
    datasets_table,
    duration_text,
    format_time,
    key_value_table,
    metrics_overview,
    metrics_table,
    model_versions_filter,
    model_versions_table,
    ranged_keys,
    run_page_query,
    runs_page_query,
    selected_run_id,
    status_badge,
)

settings = cache.settings()
run_id = st.query_params.get("run_id", "").strip()


def show_parent(run: Run) -> None:
    """A link to the parent run, named when it can still be read."""
    parent_id = run.parent_run_id
    if parent_id is None:
        return
    try:
        label = f"Parent run: {escape_markdown(cache.run(settings, parent_id).name or parent_id)}"
    except FlightdeckError:
        label = f"Parent run {escape_markdown(parent_id)} (could not be read)"
    st.page_link(
        RUN_PAGE,
        label=label,
        icon=":material/arrow_upward:",
        query_params=run_page_query(parent_id),
    )


def show_children(run: Run) -> None:
    """The runs nested under this one; choosing a row opens it."""
    try:
        with st.spinner("Looking for child runs…"):
            children = cache.child_runs(settings, run.experiment_id, run.run_id)
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        return
    if not children.runs:
        return
    more = f", the newest {CHILD_RUNS_MAX:,} shown" if children.next_page_token else ""
    st.subheader(f"Child runs ({len(children.runs):,}{more})")
    st.caption("Select a row to open that run.")
    table = child_runs_table(children.runs)
    event = st.dataframe(
        table,
        hide_index=True,
        key=f"run.children.{run.run_id}",
        on_select="rerun",
        selection_mode="single-row",
        column_config={
            "Run": st.column_config.TextColumn(pinned=True),
            "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss [UTC]"),
            "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
        },
    )
    chosen = selected_run_id(table, event.selection.rows)
    if chosen:
        st.switch_page(RUN_PAGE, query_params=run_page_query(chosen))


def show_metrics(run: Run) -> None:
    """Latest, min and max of each metric."""
    if not run.metrics:
        st.info("This run logged no metrics.")
        return
    table_slot = st.empty()  # the latest values at once; min and max once histories are in
    latest_only = metrics_overview(run, lambda _: (), max_ranged=0)
    table_slot.dataframe(metrics_table(latest_only), hide_index=True)
    try:
        with st.spinner("Reading metric histories for min and max…"):
            histories = cache.full_histories(settings, run.run_id, ranged_keys(run))
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        return
    overview = metrics_overview(run, histories.__getitem__)
    if overview.capped:
        st.caption(
            f"Min and max cover the first {overview.ranged:,} of {len(overview.summaries):,} "
            "metrics by name; the others show their latest value only."
        )
    table_slot.dataframe(
        metrics_table(overview),
        hide_index=True,
        key="run.metrics",
        column_config={"Metric": st.column_config.TextColumn(pinned=True)},
    )
    if overview.nan_keys:
        st.caption(
            f"Empty Last cells are NaN: {escape_markdown(', '.join(overview.nan_keys[:20]))}"
            + (" and others." if len(overview.nan_keys) > 20 else ".")
        )


def show_key_values(values: Mapping[str, str], key_label: str, noun: str) -> None:
    """Params or tags as a two-column text table."""
    if not values:
        st.info(f"This run has no {noun}.")
        return
    st.dataframe(
        key_value_table(values, key_label),
        hide_index=True,
        key=f"run.{noun}",
        column_config={key_label: st.column_config.TextColumn(pinned=True)},
    )


def show_datasets(run: Run) -> None:
    """The datasets the run logged as inputs."""
    if not run.datasets:
        st.info("This run logged no input datasets.")
        return
    st.dataframe(datasets_table(run), hide_index=True, key="run.datasets")


def show_model_versions(run: Run) -> None:
    """The registered model versions whose source is this run."""
    try:
        with st.spinner("Looking for registered model versions…"):
            versions = cache.model_versions(settings, model_versions_filter(run.run_id))
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        return
    if not versions:
        st.info("No model version was registered from this run.")
        return
    st.dataframe(
        model_versions_table(versions),
        hide_index=True,
        key="run.versions",
        column_config={
            "Registered": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]"),
        },
    )


def show_artifacts(run: Run) -> None:
    """The artifact tree with sizes, and a preview of one chosen file."""
    try:
        with st.spinner("Listing artifacts…"):
            tree = build_artifact_tree(lambda path: cache.artifacts(settings, run.run_id, path))
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        return
    if not tree.nodes:
        st.info("This run has no artifacts.")
        return
    files = tree.files
    summary = f"{len(files):,} file{'s' if len(files) != 1 else ''}, {human_size(tree.total_bytes)}"
    if tree.truncated:
        summary += " listed; the listing stopped early, so some files and folders are missing"
    st.caption(summary)
    st.dataframe(
        artifact_table(tree),
        hide_index=True,
        key="run.artifact_tree",
        column_order=("Name", "Type", "Size", "Path"),
    )
    chosen = st.selectbox(
        "Preview a file",
        options=[node.path for node in files],
        index=None,
        placeholder="Choose a file",
        key=f"run.artifact.{run.run_id}",
    )
    node = tree.find(chosen) if chosen else None
    if node is not None:
        show_artifact_file(run, plan_preview(node))


def show_artifact_file(run: Run, plan: PreviewPlan) -> None:
    """One file: its preview when small enough, and a way to get it whole."""
    content: bytes | None = None
    if plan.preview or plan.download:
        try:
            with st.spinner(f"Reading {escape_markdown(plan.file_name)}…"):
                content = cache.artifact_bytes(settings, run.run_id, plan.path)
        except FlightdeckError as exc:
            st.error(escape_markdown(str(exc)))
            return
    if plan.preview and content is not None:
        show_preview(build_preview(plan, content))
    else:
        st.info(plan.reason, icon=":material/visibility_off:")  # sizes and fixed text only
    if plan.download and content is not None:
        st.download_button(
            f"Download {escape_markdown(plan.file_name)} ({human_size(plan.size_bytes)})",
            data=content,
            file_name=plan.file_name,
            mime=DOWNLOAD_MIME,
            icon=":material/download:",
            on_click="ignore",
            key="run.download",
        )
    elif not plan.download:
        st.link_button(
            "Open this file in MLflow",
            mlflow_artifact_url(settings.tracking_uri, run.experiment_id, run.run_id, plan.path),
            icon=":material/open_in_new:",
        )


def show_preview(preview: ArtifactPreview) -> None:
    """Draw a preview; nothing in it is rendered as HTML or Markdown."""
    if preview.note:
        st.caption(escape_markdown(preview.note))
    if preview.kind is PreviewKind.TEXT:
        height = 480 if preview.text.count("\n") > 20 else "content"
        st.code(preview.text, language=preview.language, height=height, wrap_lines=True)
    elif preview.kind is PreviewKind.JSON:
        st.json(preview.value, expanded=2)
    elif preview.table is not None:
        st.dataframe(preview.table, hide_index=True, key="run.artifact_table")
    elif preview.kind is PreviewKind.IMAGE:
        st.image(preview.image)


if not run_id:
    st.info("No run chosen. Open a run from the Runs page.", icon=":material/info:")
    st.page_link(RUNS_PAGE, label="Go to Runs", icon=":material/table_rows:")
    st.stop()

try:
    with st.spinner("Loading the run…"):
        run = cache.run(settings, run_id)
except NotFound:
    st.error(
        f"Run {escape_markdown(run_id)} was not found. It may have been deleted for good, or the "
        "link is wrong.",
        icon=":material/search_off:",
    )
    st.page_link(RUNS_PAGE, label="Back to Runs", icon=":material/arrow_back:")
    st.stop()
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.page_link(RUNS_PAGE, label="Back to Runs", icon=":material/arrow_back:")
    st.stop()

try:
    experiment_name = cache.experiment(settings, run.experiment_id).name
except FlightdeckError:
    experiment_name = f"experiment {run.experiment_id}"

st.page_link(
    RUNS_PAGE,
    label=f"Runs of {escape_markdown(experiment_name)}",
    icon=":material/arrow_back:",
    query_params=runs_page_query(run.experiment_id),
)
st.title(escape_heading(run.name or run.run_id))
badge = status_badge(run.status)
st.badge(badge.label, color=badge.color, icon=badge.icon)
st.caption(f"Run ID {run.run_id} · Experiment {escape_markdown(experiment_name)}")
if run.deleted:
    st.warning(
        "This run is deleted: MLflow keeps it in the trash until it is purged. It is shown as "
        "it was.",
        icon=":material/delete:",
    )

st.markdown(
    f":material/timer: **Duration** {duration_text(run, datetime.now(UTC))}"
    f" · :material/play_arrow: **Started** {format_time(run.start_time)}"
    f" · :material/stop: **Ended** {format_time(run.end_time)}"
    f" · :material/person: **User** {escape_markdown(run.user) if run.user else '—'}"
)
st.link_button(
    "Open in MLflow",
    mlflow_run_url(settings.tracking_uri, run.experiment_id, run.run_id),
    icon=":material/open_in_new:",
)

show_parent(run)
show_children(run)

metrics_tab, params_tab, tags_tab, datasets_tab, versions_tab, artifacts_tab = st.tabs(
    [
        f"Metrics ({len(run.metrics):,})",
        f"Params ({len(run.params):,})",
        f"Tags ({len(run.tags):,})",
        f"Datasets ({len(run.datasets):,})",
        "Model versions",
        "Artifacts",
    ]
)
with metrics_tab:
    show_metrics(run)
with params_tab:
    show_key_values(run.params, "Param", "params")
with tags_tab:
    show_key_values(run.tags, "Tag", "tags")
with datasets_tab:
    show_datasets(run)
with versions_tab:
    show_model_versions(run)
with artifacts_tab:
    show_artifacts(run)
