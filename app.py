"""Flightdeck: the frame around every page.

It sets up the page, builds the settings and identity once per script run, checks the tracking
server, shows the shared sidebar, and routes to the chosen page.
"""

from __future__ import annotations

import streamlit as st

from services import cache
from services.auth import current_identity
from services.errors import ConfigurationError, FlightdeckError
from services.formatting import ago
from services.links import (
    COMPARE_PAGE,
    COMPARE_URL_PATH,
    EXPERIMENTS_PAGE,
    EXPERIMENTS_URL_PATH,
    RUN_PAGE,
    RUN_URL_PATH,
    RUNS_PAGE,
    RUNS_URL_PATH,
)
from services.settings import load_settings

st.set_page_config(page_title="Flightdeck", page_icon=":material/flight_takeoff:", layout="wide")
cache.start_script_run()

navigation = st.navigation(
    {
        "Experiments": [
            st.Page(
                EXPERIMENTS_PAGE,
                title="Experiments",
                icon=":material/science:",
                url_path=EXPERIMENTS_URL_PATH,
                default=True,
            ),
            st.Page(RUNS_PAGE, title="Runs", icon=":material/table_rows:", url_path=RUNS_URL_PATH),
            st.Page(
                COMPARE_PAGE,
                title="Compare",
                icon=":material/compare_arrows:",
                url_path=COMPARE_URL_PATH,
            ),
            st.Page(
                RUN_PAGE,
                title="Run",
                icon=":material/description:",
                url_path=RUN_URL_PATH,
                visibility="hidden",
            ),
        ],
    }
)

try:
    settings = load_settings()
except ConfigurationError as exc:
    st.error(str(exc), icon=":material/settings_alert:")
    st.stop()
cache.use_settings(settings)
identity = current_identity(settings)

try:
    server = cache.server_info(settings)
    problem: FlightdeckError | None = None
except FlightdeckError as exc:
    server, problem = None, exc

with st.sidebar:
    st.markdown("## :material/flight_takeoff: Flightdeck")
    st.subheader("Tracking server")
    st.text(settings.tracking_uri)  # st.code would load a 1.5 MB highlighter on every page
    if server:
        st.caption(f":green[:material/check_circle: Reachable] · MLflow {server.version}")
    else:
        st.caption(":red[:material/error: Not reachable]")
    freshness = st.container()
    st.divider()
    st.caption(f":material/person: {identity.name}")
    if not identity.authenticated:
        st.caption(":orange[Development mode: no authentication]")

if problem is not None:
    st.error(str(problem), icon=":material/cloud_off:")
    if st.button("Retry", icon=":material/refresh:", type="primary"):
        cache.clear_all()
        st.rerun()
    st.stop()

navigation.run()

with freshness:
    fetched_at = cache.oldest_read_this_run()
    if fetched_at:
        st.caption(f"Data fetched {fetched_at:%H:%M:%S} UTC ({ago(fetched_at)})")
    if st.button("Refresh data", icon=":material/refresh:", key="refresh-data"):
        cache.clear_all()
        st.rerun()
