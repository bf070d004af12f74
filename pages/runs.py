"""Runs: the newest runs of one experiment, opened from the Experiments page.

Used by ML engineers. The experiment is in the URL (``?experiment_id=…``), so the view can be
shared or bookmarked.
"""

from __future__ import annotations

import streamlit as st

from services import cache
from services.errors import FlightdeckError, NotFound
from services.experiments import format_tags, runs_table
from services.formatting import escape_markdown, mlflow_experiment_url

settings = cache.settings()
experiment_id = st.query_params.get("experiment_id", "").strip()
st.page_link("pages/experiments.py", label="All experiments", icon=":material/arrow_back:")

if not experiment_id:
    st.info("No experiment chosen. Pick one on the Experiments page.")
    st.stop()

try:
    experiment = cache.experiment(settings, experiment_id)
except NotFound:
    st.error(
        f"Experiment {escape_markdown(experiment_id)} was not found. It may have been "
        "deleted for good, or the link is wrong. Go back to all experiments to pick another.",
        icon=":material/search_off:",
    )
    st.stop()
except FlightdeckError as exc:
    st.error(str(exc))
    st.stop()

st.title(escape_markdown(experiment.name))
if experiment.deleted:
    st.warning("This experiment is deleted: MLflow keeps it in the trash until it is purged.")
if experiment.description:
    st.text(experiment.description)
st.caption(
    f"Experiment ID {experiment.experiment_id}"
    + (f" · Tags: {escape_markdown(format_tags(experiment.tags))}" if experiment.tags else "")
)
st.link_button(
    "Open in MLflow",
    mlflow_experiment_url(settings.tracking_uri, experiment_id),
    icon=":material/open_in_new:",
)

try:
    with st.spinner("Loading runs…"):
        activity = cache.experiment_activity(settings, experiment_id)
        page = cache.first_runs_page(settings, experiment_id)
except FlightdeckError as exc:
    st.error(str(exc))
    st.stop()

if not page.runs:
    st.info("This experiment has no runs yet.")
    st.stop()

shown = len(page.runs)
st.caption(
    f"Newest {shown:,} of {activity.run_count} runs"
    if page.next_page_token
    else f"{shown:,} run{'s' if shown != 1 else ''}"
)
st.dataframe(
    runs_table(page.runs),
    hide_index=True,
    key="runs.table",
    column_config={
        "Run": st.column_config.TextColumn(pinned=True),
        "Started": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss [UTC]"),
        "Duration (s)": st.column_config.NumberColumn(format="%.1f"),
    },
)
