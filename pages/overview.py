"""Overview: are our models healthy, and what changed? The landing page.

A card per registered model (champion, primary metric across versions, drift light and
sparkline, last retrain, pending approvals), fleet counts, and the week's changes in plain
language. ``?present=1`` is presentation mode for a meeting-room screen: read-only, larger type,
no navigation, refreshed every ``refresh`` seconds, and with ``rotate=1`` one card at a time.
"""

from __future__ import annotations

import time

import streamlit as st

from services import cache
from services.core.errors import FlightdeckError
from services.core.exports import csv_export
from services.core.formatting import ago, escape_heading, escape_markdown
from services.core.links import (
    MODEL_PAGE,
    MONITORING_PAGE,
    PROMOTIONS_PAGE,
    RETRAINING_PAGE,
    present_settings,
)
from services.monitoring.drift_charts import STATUS_BADGES, STATUS_ICONS, STATUS_LABELS
from services.overview.charts import drift_sparkline, metric_trend
from services.overview.fleet import ModelHealth, Overview, changes_table, fleet_table
from services.overview.report import NO_CHROMIUM, chromium_path, html_to_pdf, report_html

CARDS_MAX = 9  # a screen's worth of cards
FLEET = "The whole fleet"

settings = cache.settings()
query = cache.read_query()
presenting, refresh_s, rotate = present_settings(query)

if presenting:
    # Static CSS (no data in it): larger type for a screen across the room.
    st.html(
        "<style>[data-testid=stMain] p, [data-testid=stMain] li {font-size: 1.25rem}"
        "[data-testid=stMetricValue] {font-size: 3rem}</style>"
    )


def show_card(health: ModelHealth, drift_thresholds: object, links: bool) -> None:
    """One model's card."""
    with st.container(border=True):
        title, badge = st.columns([3, 1], vertical_alignment="center")
        title.markdown(f"### {escape_heading(health.name)}")
        badge.badge(
            STATUS_LABELS.get(health.drift.level, health.drift.level),
            icon=STATUS_ICONS.get(health.drift.level),
            color=STATUS_BADGES.get(health.drift.level, "gray"),  # type: ignore[arg-type]
        )
        if health.champion is None:
            st.markdown("No **@champion** yet.")
        else:
            since = (
                f"since {health.champion_since:%d %b} ({ago(health.champion_since)})"
                if health.champion_since
                else "set outside Flightdeck"
            )
            approved = (
                f", approved by {escape_markdown(', '.join(health.approved_by))}"
                if health.approved_by
                else ""
            )
            metric = (
                f" · {escape_markdown(health.primary_metric)} **{health.champion_metric:.4g}**"
                if health.champion_metric is not None
                else ""
            )
            st.markdown(f"**@champion v{health.champion}** {since}{approved}{metric}")
        if health.metric_by_version:
            st.altair_chart(  # keyed: two models with the same history draw the same chart
                metric_trend(health), key=f"overview.trend.{health.name}"
            )
        if health.drift_shares:
            st.caption(escape_markdown(health.drift.reason))
            st.altair_chart(
                drift_sparkline(health, drift_thresholds),  # type: ignore[arg-type]
                key=f"overview.drift.{health.name}",
            )
        else:
            st.caption(
                "No monitoring yet: run `python -m jobs.monitor --model <name> --data <batch>` "
                "to start watching drift."
            )
        job = health.last_retrain
        if job is None:
            st.markdown("Last retrain: none yet.")
        else:
            result = f"v{job.new_version}" if job.new_version is not None else job.status
            proposed = ", proposed for approval" if job.promotion_request_id else ""
            st.markdown(
                f"Last retrain: {job.created_at:%d %b} ({escape_markdown(job.trigger)}) → "
                f"{escape_markdown(result)}{proposed}"
            )
        st.markdown(
            f"Pending approvals: **{health.pending_approvals}** · Open alarm: "
            f"**{'yes' if health.in_alarm else 'no'}**"
        )
        if links:
            first, second = st.columns(2), st.columns(2)
            first[0].page_link(
                MODEL_PAGE, label="Model", icon=":material/deployed_code:",
                query_params={"name": health.name},
            )  # fmt: skip
            first[1].page_link(
                MONITORING_PAGE, label="Drift", icon=":material/monitoring:",
                query_params={"model": health.name},
            )  # fmt: skip
            second[0].page_link(
                PROMOTIONS_PAGE, label="Approvals", icon=":material/how_to_reg:",
            )  # fmt: skip
            second[1].page_link(
                RETRAINING_PAGE, label="Retrain", icon=":material/model_training:",
                query_params={"model": health.name},
            )  # fmt: skip


def show_overview(overview: Overview) -> None:
    """The fleet counts, the cards and the week's changes."""
    counts = overview.counts
    columns = st.columns(4)
    columns[0].metric("Models", counts.models)
    columns[1].metric("In drift alarm", counts.in_alarm)
    columns[2].metric("Pending approvals", counts.pending_approvals)
    columns[3].metric("Retrains this week", counts.retrains_this_week)
    thresholds = cache.governance().drift
    # Models in alarm or waiting for a decision first; past CARDS_MAX the rest are a table.
    ranked = sorted(overview.models, key=lambda h: (not h.in_alarm, not h.pending_approvals))
    cards, rest = ranked[:CARDS_MAX], ranked[CARDS_MAX:]
    if presenting and rotate and cards:
        cards = [cards[int(time.time() // refresh_s) % len(cards)]]
        st.caption(f"Showing one model at a time, next in {refresh_s} s.")
    grid = st.columns(min(3, len(cards)) or 1)
    for index, health in enumerate(cards):
        with grid[index % len(grid)]:
            show_card(health, thresholds, links=not presenting)
    if rest:
        st.caption(f"{len(rest)} more models:")
        st.dataframe(
            fleet_table(Overview(tuple(rest), overview.counts, (), overview.at)), hide_index=True
        )
    st.subheader("What changed in the last 7 days", anchor=False)
    if not overview.changes:
        st.caption("Nothing: no promotions, rollbacks, retrains or drift alarms this week.")
    for change in overview.changes:
        st.markdown(f"- {escape_markdown(change.text)}")
    st.caption(f"Read {overview.at:%Y-%m-%d %H:%M} UTC.")


def read() -> Overview | None:
    try:
        return cache.fleet_overview(settings)
    except FlightdeckError as exc:
        st.error(escape_markdown(str(exc)), icon=":material/error:")
        return None


if not presenting:
    heading, toggle = st.columns([4, 1], vertical_alignment="bottom")
    heading.title("Fleet overview")
    if toggle.toggle("Presentation mode", help="Read-only, larger type, refreshes itself."):
        cache.write_query({"present": ["1"]})
        st.rerun()
    overview = read()
    if overview is None:
        st.stop()
    if not overview.models:
        st.info(
            "No registered models yet. Register a model in MLflow (or run `make run` for the "
            "demo), and its health appears here."
        )
        st.stop()
    show_overview(overview)
    st.subheader("Export", anchor=False)
    names = [h.name for h in overview.models]
    scope = st.selectbox("Report for", [FLEET, *names], key="overview.report_scope")
    one_model = None if scope == FLEET else scope
    stem = "flightdeck-" + ("fleet" if one_model is None else "model")
    thresholds = cache.governance().drift
    export = st.columns(4)
    export[2].download_button(
        "Report (HTML)",
        lambda: report_html(overview, thresholds, one_model),
        file_name=f"{stem}.html",
        mime="text/html",
        icon=":material/download:",
        on_click="ignore",  # a download needs no rerun
        help="One self-contained file: charts included, opens with no network.",
    )
    export[3].download_button(
        "Report (PDF)",
        lambda: html_to_pdf(report_html(overview, thresholds, one_model)),
        file_name=f"{stem}.pdf",
        mime="application/pdf",
        icon=":material/picture_as_pdf:",
        on_click="ignore",
        disabled=chromium_path() is None,
        help=NO_CHROMIUM if chromium_path() is None else "Printed by headless Chromium.",
    )
    export[0].download_button(
        "Models (CSV)",
        lambda: csv_export(fleet_table(overview)),
        file_name="flightdeck-fleet.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
    export[1].download_button(
        "Changes (CSV)",
        lambda: csv_export(changes_table(overview)),
        file_name="flightdeck-changes.csv",
        mime="text/csv",
        icon=":material/download:",
        on_click="ignore",
    )
else:

    @st.fragment(run_every=refresh_s)
    def presentation() -> None:
        cache.clear_all()  # each refresh reads MLflow afresh
        st.title("Model health")
        overview = read()
        if overview is None:
            return
        if not overview.models:
            st.info("No registered models yet.")
            return
        show_overview(overview)

    presentation()
