"""Experiments: every experiment on the tracking server, searchable, with a way into its runs.

Used by ML engineers looking for an experiment. The search and the deleted toggle are in the
URL, so a filtered list can be shared.
"""

from __future__ import annotations

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError
from services.core.formatting import escape_markdown
from services.core.links import RUNS_PAGE
from services.experiments.listing import experiments_table, filter_by_name

settings = cache.settings()
st.title("Experiments")

search_column, deleted_column = st.columns([4, 1], vertical_alignment="bottom")
name_filter = search_column.text_input(
    "Search by name",
    value=st.query_params.get("q", ""),
    placeholder="e.g. wine",
    key="experiments.q",
)
show_deleted = deleted_column.toggle(
    "Show deleted", value=st.query_params.get("deleted") == "1", key="experiments.deleted"
)
# Keep the view in the URL so it can be shared; empty values stay out of it.
for param, value in {"q": name_filter, "deleted": "1" if show_deleted else ""}.items():
    if value:
        st.query_params[param] = value
    else:
        st.query_params.pop(param, None)

try:
    with st.spinner("Loading experiments…"):
        found = filter_by_name(cache.experiments(settings, show_deleted), name_filter)
        activity = {
            e.experiment_id: cache.experiment_activity(settings, e.experiment_id) for e in found
        }
except FlightdeckError as exc:
    st.error(escape_markdown(str(exc)))
    st.stop()

if not found:
    if name_filter:
        st.info(
            f"No experiment name contains “{escape_markdown(name_filter)}”. "
            "Clear the search to see all experiments."
        )
    else:
        st.info(
            "This tracking server has no experiments yet. With the embedded server, "
            "`python -m jobs.seed_demo` adds demo data."
        )
    st.stop()

table = experiments_table(found, activity)
if not show_deleted:
    table = table.drop(columns="Deleted")
st.caption(
    f"{len(found)} experiment{'s' if len(found) != 1 else ''}. Select a row to open its runs."
)
selection = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="experiments.table",
    column_config={
        "Name": st.column_config.TextColumn(width="medium", pinned=True),
        "ID": st.column_config.TextColumn(width="small"),
        "Runs": st.column_config.TextColumn(help="Active runs; “+” means at least this many."),
        "Last update": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm [UTC]"),
        "Tags": st.column_config.TextColumn(width="large"),
        "Description": st.column_config.TextColumn(width="large"),
    },
)
if selection.selection.rows:
    chosen = table.iloc[selection.selection.rows[0]]
    st.switch_page(RUNS_PAGE, query_params={"experiment_ids": str(chosen["ID"])})
