"""Runs: explore the runs of one or several experiments, filter them (with OR), pick columns,
group, select runs to compare, and export.

Used by ML engineers looking for their best runs. Everything a person would share (experiments,
filter, quick filters, sort, columns, grouping, selection) is in the URL.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError, InvalidRequest
from services.core.exports import csv_export
from services.core.formatting import escape_markdown, mlflow_experiment_url
from services.core.links import COMPARE_PAGE, EXPERIMENTS_PAGE, RUN_PAGE, RunsView
from services.experiments.runs import (
    BASE_COLUMNS,
    RUN_STATUSES,
    build_search,
    column_catalog,
    default_columns,
    experiment_names,
    group_summary,
    parse_run_ids,
    runs_frame,
    sort_frame,
)

FILTER_HELP = (
    "MLflow's filter syntax, e.g. `metrics.eval_f1 > 0.9 and params.max_depth = '3'`. "
    "Flightdeck adds **or**: conditions joined by `or` run as separate MLflow queries and the "
    "results are merged without duplicates. `and` binds tighter than `or`."
)
MAX_COMPARED = 100


@st.dialog("Link to this view")
def show_link(url: str) -> None:
    """On request: a code block loads a 1.5 MB highlighter, which would slow the first render."""
    st.caption("This link opens the same view: experiments, filters, columns and selection.")
    st.code(url, language=None, wrap_lines=True)


settings = cache.settings()
query = cache.read_query()
if "experiment_id" in query and "experiment_ids" not in query:  # links from older versions
    query = {**query, "experiment_ids": query["experiment_id"]}
view = RunsView.from_query(query)
st.title("Runs")

try:
    experiments = cache.experiments(settings, include_deleted=True)
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()
names = experiment_names(experiments)
unknown = [i for i in view.experiment_ids if i not in names]
if unknown:
    st.warning(
        f"Experiment {', '.join(map(escape_markdown, unknown))} was not found: it may have "
        "been deleted for good, or the link is wrong. Showing the rest.",
        icon=":material/search_off:",
    )
    st.page_link(EXPERIMENTS_PAGE, label="All experiments", icon=":material/arrow_back:")
choosable = [e.experiment_id for e in experiments if not e.deleted]
chosen = st.multiselect(
    "Experiments",
    options=list(dict.fromkeys([*choosable, *(i for i in view.experiment_ids if i in names)])),
    default=[i for i in view.experiment_ids if i in names],
    format_func=lambda i: names.get(i, i),
    placeholder="Choose one or more experiments",
    key="runs.experiments",
)

filter_text = st.text_input(
    "Filter",
    value=view.filter,
    help=FILTER_HELP,
    key="runs.filter",
    placeholder="metrics.eval_f1 > 0.9 or params.model_family = 'linear'",
)
filter_problem = st.empty()
quick_set = bool(
    view.statuses or view.started_from or view.started_to or view.tag or view.parents_only
)
statuses, dates, tag, parents_only = [], (), "", False  # off means no quick filters
# Shown on request: the first render stays light, so the table appears sooner.
if st.toggle("Quick filters", value=quick_set, key="runs.quick"):
    statuses, dates = list(view.statuses), (view.started_from, view.started_to)
    tag, parents_only = view.tag, view.parents_only
    status_column, date_column, tag_column, parent_column = st.columns(
        [3, 3, 2, 2], vertical_alignment="bottom"
    )
    statuses = status_column.multiselect(
        "Status", RUN_STATUSES, default=statuses, key="runs.statuses", placeholder="Any status"
    )
    dates = date_column.date_input(
        "Started between",
        value=tuple(d for d in dates if d),
        key="runs.dates",
        format="YYYY-MM-DD",
    )
    tag = tag_column.text_input("Tag", value=tag, placeholder="team=health", key="runs.tag")
    parents_only = parent_column.toggle("Only parent runs", value=parents_only, key="runs.parents")
started = [d for d in (dates if isinstance(dates, tuple | list) else [dates]) if d]
view = replace(
    view,
    experiment_ids=tuple(chosen),
    filter=filter_text.strip(),
    statuses=tuple(statuses),
    started_from=started[0] if started else None,
    started_to=started[1] if len(started) > 1 else None,
    tag=tag.strip(),
    parents_only=parents_only,
)

if not view.experiment_ids:
    cache.write_query(view.to_query())
    st.info("Choose one or more experiments above to see their runs.")
    st.stop()
if len(view.experiment_ids) == 1:
    (only,) = (e for e in experiments if e.experiment_id == view.experiment_ids[0])
    if only.deleted:
        st.warning("This experiment is deleted: MLflow keeps it in the trash until it is purged.")
    if only.description:
        st.text(only.description)
    st.link_button(
        "Open in MLflow",
        mlflow_experiment_url(settings.tracking_uri, only.experiment_id),
        icon=":material/open_in_new:",
    )

# -- fetch: the first page at once; everything when asked, in the background ----------------------
# The sort widgets sit below the table but decide the query: read this rerun's choice first.
view = replace(
    view,
    sort=st.session_state.get("runs.sort", view.sort),
    ascending=st.session_state.get("runs.ascending", view.ascending),
)
runs = None
try:
    search = build_search(view)
    with st.spinner("Loading runs…"):
        runs, more = cache.runs_first_page(settings, search)
    st.session_state["runs.last_good"] = (runs, more)
except InvalidRequest as exc:
    filter_problem.error(
        f"MLflow cannot use this filter: {escape_markdown(str(exc))}", icon=":material/error:"
    )
except FlightdeckError as exc:
    filter_problem.error(escape_markdown(str(exc)), icon=":material/error:")
if runs is None:
    if "runs.last_good" not in st.session_state:
        st.stop()
    runs, more = st.session_state["runs.last_good"]
    st.caption("Showing the last results that worked.")
    search = None

loader = None
if more and search is not None:
    if st.session_state.get("runs.load_all") == search:
        loader = cache.run_loader(settings, search)
    elif st.button(
        f"Load all runs (showing the first {len(runs):,})",
        icon=":material/download:",
        help="Fetches every matching run in the background; the table stays usable meanwhile.",
    ):
        st.session_state["runs.load_all"] = search
        loader = cache.run_loader(settings, search)


@st.fragment(run_every=1.0)
def load_progress() -> None:
    """Progress of "Load all"; reruns the page once everything is in."""
    if loader is None:
        return
    if loader.done:
        st.rerun()
    unfiltered = search is not None and search.filters == ("",)
    total = (
        sum(cache.experiment_activity(settings, i).run_count.value for i in view.experiment_ids)
        if unfiltered
        else 0
    )
    loaded = len(loader.runs)
    if total:
        st.progress(min(loaded / total, 1.0), text=f"Loading all runs… {loaded:,} of {total:,}")
    else:
        st.progress(0.0, text=f"Loading all runs… {loaded:,} so far")


if loader is not None:
    if loader.done and loader.error:
        st.error(
            f"Loading all runs stopped: {escape_markdown(str(loader.error))} Use Load all to "
            "try again."
        )
        st.session_state.pop("runs.load_all", None)
    elif loader.done:
        runs, more = list(loader.runs), False
    else:
        load_progress()
        st.caption(f"Showing the first {len(runs):,} runs while the rest load.")

if not runs:
    st.info("No runs match. Loosen the filter or the quick filters, or choose other experiments.")
    cache.write_query(view.to_query())
    st.stop()

# -- table ----------------------------------------------------------------------------------------
catalog = column_catalog(runs)
picked_columns = [c for c in view.columns if c in catalog.all] or list(default_columns(catalog))
column_choice, sort_choice, order_choice = st.columns([6, 3, 1], vertical_alignment="bottom")
columns = column_choice.multiselect(
    "Columns",
    catalog.all,
    default=picked_columns,
    key="runs.columns",
    help="Metrics, params and tags of these runs. Type to search.",
)
sort_options = ["", *BASE_COLUMNS, *columns]
sort = sort_choice.selectbox(
    "Sort by",
    sort_options,
    index=sort_options.index(view.sort) if view.sort in sort_options else 0,
    format_func=lambda c: c or "Newest first",
    key="runs.sort",
)
ascending = order_choice.toggle("Asc.", value=view.ascending, key="runs.ascending")
view = replace(view, columns=tuple(columns), sort=sort, ascending=ascending)

table = sort_frame(runs_frame(runs, columns, names), sort, ascending)
total_note = "" if not more else " (more match: use Load all)"
st.caption(f"{len(table):,} runs{total_note}. Select rows to compare them.")
table_event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="multi-row",
    key="runs.table",
    column_config={
        "Run": st.column_config.TextColumn(pinned=True),
        "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]"),
        "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
    },
)

# -- selection: table rows, pasted ids, and the ones the link came with ----------------------------
table_ids = [str(table.index[i]) for i in table_event.selection.rows]
previous = st.session_state.get("runs.previous_table_selection", [])
st.session_state["runs.previous_table_selection"] = table_ids
unselected = set(previous) - set(table_ids)
pasted = parse_run_ids(
    st.text_input(
        "Or paste run ids", key="runs.paste", placeholder="Run ids separated by spaces or commas"
    )
)
selected = tuple(
    i for i in dict.fromkeys([*view.selected, *table_ids, *pasted]) if i not in unselected
)
view = replace(view, selected=selected)

actions = st.columns([2, 2, 2, 2], vertical_alignment="center")
actions[0].button(
    f"Compare {len(selected)} runs",
    icon=":material/compare_arrows:",
    type="primary",
    disabled=not 2 <= len(selected) <= MAX_COMPARED,
    key="runs.compare",
    help=f"Select 2 to {MAX_COMPARED} runs.",
    on_click=lambda: st.session_state.update({"runs.go_compare": True}),
)
if len(selected) == 1:
    actions[1].page_link(
        RUN_PAGE,
        label="Open the selected run",
        icon=":material/open_in_new:",
        query_params={"run_id": selected[0]},
    )
if selected and actions[2].button("Clear selection", icon=":material/deselect:"):
    view = replace(view, selected=())
    st.session_state["runs.paste"] = ""
actions[3].download_button(
    "Export CSV",
    lambda: csv_export(table),  # built on click, not on every rerun
    file_name="runs.csv",
    mime="text/csv",
    icon=":material/download:",
    on_click="ignore",  # a download needs no rerun
)

# -- groups ----------------------------------------------------------------------------------------
group_by, group_metrics = "", []
if st.toggle("Group by a param or tag", value=bool(view.group_by), key="runs.grouping"):
    group_options = ["", *catalog.params, *catalog.tags]
    group_by = st.selectbox(
        "Group by",
        group_options,
        index=group_options.index(view.group_by) if view.group_by in group_options else 0,
        format_func=lambda c: c or "No grouping",
        key="runs.group_by",
    )
    group_metrics = st.multiselect(
        "Summarise metrics",
        catalog.metrics,
        key="runs.group_metrics",
        default=[m for m in view.group_metrics if m in catalog.metrics]
        or [c for c in columns if c.startswith("metrics.")][:3],
    )
    if group_by:
        st.dataframe(group_summary(runs, group_by, group_metrics), hide_index=True)
view = replace(view, group_by=group_by, group_metrics=tuple(group_metrics) if group_by else ())

cache.write_query(view.to_query())
if st.button("Copy link", icon=":material/link:", key="runs.copy_link"):
    show_link(cache.share_url(view.to_query()))

if st.session_state.pop("runs.go_compare", False):
    st.switch_page(COMPARE_PAGE, query_params={"run_ids": list(selected)})
