"""Monitoring: a model's data drift over time, one batch in detail, and a check on demand.

Used by ML engineers and managers watching model health, and by operators who want to check a
new batch before trusting the model with it. Per registered model: a green, amber or red status
from the configured thresholds; the share of drifted columns per batch against the warning and
alarm bands, with the monitored version's changes marked; a heatmap of each column's score by
batch; one batch's columns (drifted first) with a column's reference-against-current
distribution; and Evidently's full report as a download, because its HTML embeds the data
verbatim and must never run inside Flightdeck. Operators can upload a CSV or Parquet batch and
compare it with the reference of the version an alias points at, then keep it as a monitoring
run. The model, alias, time range, batch and column are in the URL (``monitoring?model=…``).
Column names and category values are untrusted text: tables and escaped chart labels only.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import streamlit as st

from services import cache
from services.core.errors import DriftError, FlightdeckError, NotFound
from services.core.formatting import escape_markdown
from services.core.gateway import TrackingGateway
from services.core.links import MODELS_PAGE, MonitoringView
from services.experiments.compare import keep_implicit
from services.governance.auth import Action, role_phrase
from services.monitoring import drift_check
from services.monitoring import runs as monitoring
from services.monitoring import view as monitoring_view
from services.monitoring.drift import NUMERIC, DriftSummary, check_schema, summary_table
from services.monitoring.drift_charts import (
    STATUS_BADGES,
    STATUS_ICONS,
    STATUS_LABELS,
    batch_label,
    drift_heatmap,
    drift_over_time,
    feature_distribution,
)
from services.monitoring.drift_check import MAX_UPLOAD_MB, UPLOAD_TYPES, DriftCheck
from services.monitoring.runs import MonitoringRun

LAST_QUERY_KEY = "monitoring.last_query"
WIDGET_KEYS = (
    "monitoring.model",
    "monitoring.alias",
    "monitoring.range",
    "monitoring.batch",
    "monitoring.feature",
    "monitoring.ecdf",
)
CHECK_KEY = "monitoring.check"
NO_MONITORING = (
    "No model has monitoring batches yet. Run the monitoring job, which compares each new batch "
    "of data with the reference sample of the version an alias points at and logs the result "
    "to MLflow:\n\n"
    "`.venv/bin/python -m jobs.monitor --model NAME --data batch.parquet`\n\n"
    "Or check a batch now, below."
)

settings = cache.settings()
me = cache.identity()
thresholds = cache.governance().drift
query = cache.read_query()
if st.session_state.get(LAST_QUERY_KEY) != query:
    # A new link was opened in this session: its URL wins over the widgets' previous state.
    for widget_key in WIDGET_KEYS:
        st.session_state.pop(widget_key, None)
view = MonitoringView.from_query(query)


@st.dialog("Link to this view")
def show_link(url: str) -> None:
    st.caption("This link opens the same view: model, alias, time range, batch and column.")
    st.code(url, language=None, wrap_lines=True)


def show_status(runs: list[MonitoringRun], label: str) -> None:
    """The green, amber or red badge, and why, from the configured thresholds."""
    status = monitoring.drift_status(runs, thresholds)
    badge_column, reason_column = st.columns([1, 5], vertical_alignment="center")
    with badge_column:
        st.badge(
            STATUS_LABELS.get(status.level, status.level),
            icon=STATUS_ICONS.get(status.level),
            color=STATUS_BADGES.get(status.level, "gray"),  # type: ignore[arg-type]
        )
    reason_column.caption(f"{escape_markdown(label)}: {escape_markdown(status.reason)}")


def show_summary(summary: DriftSummary, prefix: str, wanted: str, ecdf: bool) -> tuple[str, bool]:
    """A batch's columns, drifted first, and one column's distribution; returns the choices."""
    share_column, drifted_column, rows_column = st.columns(3)
    share_column.metric("Share of columns drifted", f"{summary.drift_share:.0%}")
    drifted_column.metric(
        "Drifted columns", f"{summary.drifted_columns} of {len(summary.features)}"
    )
    rows_column.metric(
        "Rows compared (current / reference)",
        f"{summary.current_rows:,} / {summary.reference_rows:,}",
    )
    if summary.dataset_drift:
        st.warning("Evidently flags the dataset as drifted.", icon=":material/warning:")
    st.dataframe(
        summary_table(summary),
        hide_index=True,
        key=f"{prefix}features",
        column_config={
            "Column": st.column_config.TextColumn(pinned=True),
            "Score": st.column_config.NumberColumn(format="%.4g"),
            "Threshold": st.column_config.NumberColumn(format="%.4g"),
            "Drifted": st.column_config.CheckboxColumn(),
        },
    )
    feature = monitoring_view.chosen_feature(summary, wanted)
    if feature is None:
        st.info("This batch has no columns to draw.")
        return "", ecdf
    columns = [f.column for f in monitoring_view.sorted_features(summary)]
    pick_column, ecdf_column = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick_column.selectbox(
        "Column", columns, index=columns.index(feature.column), key=f"{prefix}feature"
    )
    feature = next(f for f in summary.features if f.column == chosen)
    ecdf = ecdf_column.toggle(
        "Cumulative",
        value=ecdf,
        key=f"{prefix}ecdf",
        disabled=feature.kind != NUMERIC,
        help="For a numeric column: the two cumulative distributions instead of histograms.",
    )
    st.altair_chart(feature_distribution(feature, ecdf=ecdf), key=f"{prefix}distribution")
    return chosen, ecdf


def report_bytes(gateway: TrackingGateway, run_id: str) -> Callable[[], bytes]:
    """The report, read when the button is clicked (on Streamlit's thread, without the page)."""

    def read() -> bytes:
        try:
            return monitoring.report_html(gateway, run_id)
        except FlightdeckError as exc:
            message = html.escape(str(exc))
            return f"<!doctype html><title>Report unavailable</title><p>{message}</p>".encode()

    return read


def save_check() -> None:
    """The "Save as monitoring run" callback: runs before the page reruns, as the viewer."""
    check = st.session_state.get(CHECK_KEY)
    if not isinstance(check, DriftCheck):
        return
    try:
        run_id = drift_check.save_as_monitoring_run(
            cache.gateway(settings), cache.store(settings), me, check
        )
    except FlightdeckError as exc:
        st.session_state["monitoring.problem"] = f"Save: {escape_markdown(str(exc))}"
        return
    cache.clear_all()
    cache.write_query(MonitoringView(model=check.model, batch=run_id).to_query())
    st.session_state["monitoring.flash"] = (
        f"Saved as monitoring run {run_id[:8]}: it is now the newest batch of this model."
    )


@st.fragment(run_every=1)
def poll_check() -> None:
    """Until the check is done: its progress, each second; then the whole page again."""
    check = st.session_state.get(CHECK_KEY)
    if not isinstance(check, DriftCheck):
        return
    if check.done:
        st.rerun()
    st.progress(
        check.progress,
        text=f"Computing drift against the reference of @{escape_markdown(check.alias)}… "
        f"{check.elapsed_s:.0f} s (about {check.expected_s:.0f} s expected)",
    )


st.title("Monitoring")
if flash := st.session_state.pop("monitoring.flash", None):
    st.success(flash, icon=":material/check_circle:")
if problem := st.session_state.pop("monitoring.problem", None):
    st.error(problem, icon=":material/error:")

try:
    with st.spinner("Finding monitored models…"):
        names = [m.name for m in cache.registered_models(settings)]
        monitored = cache.monitored_models(settings)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not names:
    st.info("There are no registered models yet: monitoring watches registered models.")
    st.page_link(MODELS_PAGE, label="Models", icon=":material/model_training:")
    st.stop()
if not monitored:
    st.info(NO_MONITORING, icon=":material/monitoring:")

if view.model and view.model not in names:
    # Registered since the list was read? The list is cached; one model is cheap to ask for.
    try:
        names.append(cache.registered_model(settings, view.model).name)
        if cache.monitoring_runs(settings, view.model):
            monitored.append(view.model)
    except NotFound:
        pass
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)))
        st.stop()
options = monitoring_view.monitored_first(names, monitored)
if view.model and view.model not in options:
    st.warning(
        f"There is no registered model named “{escape_markdown(view.model)}”. It may have been "
        "renamed or deleted, or the link is wrong.",
        icon=":material/search_off:",
    )
    view = MonitoringView()
shown_model = view.model or options[0]
model = st.selectbox(
    "Model",
    options,
    index=options.index(shown_model),
    format_func=lambda name: name if name in monitored else f"{name} (no batches yet)",
    key="monitoring.model",
)
if model != shown_model:  # another model: its batches, not the last one's
    view = MonitoringView(model=model)
    for widget_key in WIDGET_KEYS[1:]:
        st.session_state.pop(widget_key, None)
view = replace(view, model=keep_implicit(view.model, model, options[0]))

# -- drift over time -------------------------------------------------------------------------------

try:
    with st.spinner("Reading the monitoring batches…"):
        runs = cache.monitoring_runs(settings, model)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    runs = []

if not runs:
    st.info(
        f"{escape_markdown(model)} has no monitoring batches yet. Run "
        "`.venv/bin/python -m jobs.monitor` to log some, or check a batch below.",
        icon=":material/info:",
    )
else:
    aliases = monitoring_view.aliases_of(runs)
    if view.alias and view.alias not in aliases:
        st.warning(
            f"No batch of this model was monitored through @{escape_markdown(view.alias)}: "
            "showing every alias.",
            icon=":material/search_off:",
        )
        view = replace(view, alias="")
    alias_column, range_column, link_column = st.columns([2, 3, 1], vertical_alignment="bottom")
    alias = alias_column.selectbox(
        "Alias",
        ["", *aliases],
        index=["", *aliases].index(view.alias),
        format_func=lambda a: f"@{a}" if a else "Every alias",
        key="monitoring.alias",
    )
    bounds = monitoring_view.window_bounds(runs)
    dates = range_column.date_input(
        "Batch windows between (UTC)",
        value=tuple(d for d in (view.window_from, view.window_to) if d),
        key="monitoring.range",
        format="YYYY-MM-DD",
        help="Empty shows every batch"
        + (f" ({bounds[0]:%Y-%m-%d} to {bounds[1]:%Y-%m-%d})." if bounds else "."),
    )
    picked = [d for d in (dates if isinstance(dates, tuple | list) else [dates]) if d]
    view = replace(
        view,
        alias=alias,
        window_from=picked[0] if picked else None,
        window_to=picked[1] if len(picked) > 1 else None,
    )
    if link_column.button("Copy link", icon=":material/link:", key="monitoring.copy_link"):
        show_link(cache.share_url(view.to_query()))

    shown = monitoring_view.batches(runs, view.alias, view.window_from, view.window_to)
    show_status(
        monitoring_view.batches(runs, view.alias),
        f"Latest batches{f' of @{view.alias}' if view.alias else ''}",
    )
    st.altair_chart(drift_over_time(shown, thresholds), key="monitoring.over_time")
    st.caption(
        f"Amber band: at least {thresholds.warning_share:.0%} of the columns drifted (warning). "
        f"Red band: at least {thresholds.alarm_share:.0%}; {thresholds.consecutive} latest "
        "batches in a row there raise the alarm. Diamonds mark where the monitored version "
        "changed."
    )
    st.altair_chart(drift_heatmap(shown), key="monitoring.heatmap")
    st.caption(
        "Scores are what each column's test reports: a p-value for K-S and chi-squared (low "
        "means drift), a distance for Wasserstein and Jensen-Shannon (high means drift)."
    )

    # -- one batch ---------------------------------------------------------------------------------

    st.subheader("Batch detail")
    by_id = monitoring_view.newest_first(shown)
    if not by_id:
        st.info("No batch falls in this time range: widen it, or clear it to see every batch.")
    else:
        ids = list(by_id)
        if view.batch and view.batch not in by_id:
            st.warning(
                "The linked batch is not among the batches shown (another model, alias or time "
                "range, or it was deleted): showing the newest instead.",
                icon=":material/search_off:",
            )
            view = replace(view, batch="")
        batch_id = st.selectbox(
            "Batch",
            ids,
            index=ids.index(view.batch or ids[0]),
            format_func=lambda run_id: batch_label(by_id[run_id]),
            key="monitoring.batch",
        )
        if batch_id != (view.batch or ids[0]):
            view = replace(view, feature="")
            st.session_state.pop("monitoring.feature", None)
        view = replace(view, batch=keep_implicit(view.batch, batch_id, ids[0]))
        batch = by_id[batch_id]
        try:
            with st.spinner("Reading the batch's drift summary…"):
                summary = cache.drift_summary(settings, batch_id)
        except FlightdeckError as exc:
            st.error(escape_markdown(str(exc)))
        else:
            implicit = monitoring_view.chosen_feature(summary, "")
            feature, ecdf = show_summary(summary, "monitoring.", view.feature, view.ecdf)
            view = replace(
                view,
                feature=keep_implicit(view.feature, feature, implicit.column if implicit else ""),
                ecdf=ecdf,
            )
        st.download_button(
            "Download the full Evidently report",
            data=report_bytes(cache.gateway(settings), batch_id),
            file_name=monitoring_view.report_file_name(model, batch),
            mime="text/html",
            on_click="ignore",
            icon=":material/download:",
            key="monitoring.report",
        )
        st.caption(
            "The report opens outside Flightdeck, from your downloads: it embeds the batch's "
            "data verbatim, so Flightdeck never shows it inside the app."
        )

cache.write_query(view.to_query())
st.session_state[LAST_QUERY_KEY] = cache.read_query()

# -- check a batch now ----------------------------------------------------------------------------

st.subheader("Check a batch now")
may_check = me.may(Action.CHECK_DRIFT)
if not may_check:
    st.info(
        f"You are {role_phrase(me.role)}: checking a batch needs the operator role.",
        icon=":material/lock:",
    )
try:
    model_aliases = cache.model_aliases(settings, model)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    model_aliases = {}
if not model_aliases:
    st.info(
        f"{escape_markdown(model)} has no alias: a batch is compared with the reference sample "
        "of the version an alias points at. Promote a version first.",
        icon=":material/info:",
    )
    st.stop()
alias_names = sorted(model_aliases, key=lambda a: (a != "champion", a))
check_alias = st.selectbox(
    "Compare with the reference sample of",
    alias_names,
    format_func=lambda a: f"@{a} (v{model_aliases[a]})",
    disabled=not may_check,
    key="monitoring.check_alias",
)
st.caption(
    f"Upload a CSV or Parquet file of at most {MAX_UPLOAD_MB} MB with the same columns as the "
    f"training data. Up to {drift_check.MAX_CHECK_ROWS:,} rows are sampled; drift is computed "
    "in the background, so you can keep using Flightdeck."
)
upload = st.file_uploader(
    "Batch to check",
    type=list(UPLOAD_TYPES),
    max_upload_size=MAX_UPLOAD_MB,
    disabled=not may_check,
    key="monitoring.upload",
)
if upload is None or not may_check:
    st.stop()

key = drift_check.check_key(upload.file_id, model, check_alias)
check = st.session_state.get(CHECK_KEY)
if not isinstance(check, DriftCheck) or check.key != key:
    try:
        with st.spinner("Reading the file and the reference sample…"):
            current = drift_check.read_upload(upload.name, upload.getvalue())
            _, reference = cache.drift_reference(settings, model, check_alias)
    except DriftError as exc:  # the file or the reference cannot be used: keep the reason
        check = DriftCheck.rejected(key, model, check_alias, exc)
    except FlightdeckError as exc:  # an outage: not remembered, the next rerun tries again
        st.error(escape_markdown(str(exc)))
        st.stop()
    else:
        schema = check_schema(reference, current)
        if not schema.ok:
            check = DriftCheck.rejected(
                key, model, check_alias, DriftError(schema.message()), schema
            )
        else:
            check = DriftCheck(
                key,
                model,
                check_alias,
                compute=partial(
                    monitoring.run_check,
                    cache.gateway(settings),
                    model=model,
                    alias=check_alias,
                    current=current,
                    max_rows=drift_check.MAX_CHECK_ROWS,
                ),
                expected_s=drift_check.expected_seconds(len(current), len(current.columns)),
                schema=schema,
            ).start()
    st.session_state[CHECK_KEY] = check

if not check.done:
    poll_check()
    st.stop()
if check.error is not None or check.result is None:
    # The message names the file's columns: untrusted text, so no Markdown from it.
    st.error(escape_markdown(str(check.error)), icon=":material/error:")
    if check.schema is not None and not check.schema.ok:
        problems = {
            "Missing from the file": [(c, "in the reference sample") for c in check.schema.missing],
            "Not in the reference sample": [(c, "in the file only") for c in check.schema.extra],
            "Of a type drift cannot compare": list(
                zip(
                    check.schema.unsupported,
                    check.schema.reasons or ("",) * len(check.schema.unsupported),
                    strict=False,
                )
            ),
        }
        for title, rows in problems.items():
            if rows:
                st.markdown(f"**{title}** ({len(rows)})")
                st.dataframe(
                    {"Column": [c for c, _ in rows], "Why": [why for _, why in rows]},
                    hide_index=True,
                    key=f"monitoring.check_{title.split()[0].lower()}",
                )
    st.stop()

as_run = check.as_run()
assert as_run is not None
st.markdown(
    f"**{escape_markdown(upload.name)}** against the reference of @{escape_markdown(check.alias)} "
    f"(v{check.result.version}), computed in {check.elapsed_s:.0f} s."
)
show_status([as_run], "This batch")
show_summary(check.result.result.summary, "monitoring.check_", "", False)
st.button(
    "Saved as a monitoring run" if check.saved_run_id else "Save as monitoring run",
    icon=":material/save:",
    type="primary",
    disabled=bool(check.saved_run_id),
    help="Logs this batch to MLflow with today as its window, as the monitoring job would.",
    on_click=save_check,
    key="monitoring.save_check",
)
