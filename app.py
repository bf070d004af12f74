"""Flightdeck: the frame around every page.

It sets up the page, builds the settings and identity once per script run, checks the tracking
server, shows the shared sidebar, and routes to the chosen page. Identity fails closed: without
a trusted identity that may view (services.auth), it serves no page and no navigation, only the
login screen or what to configure.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from services import cache
from services.core.errors import ConfigurationError, FlightdeckError, PermissionDenied
from services.core.formatting import ago, escape_markdown
from services.core.links import (
    ADMIN_PAGE,
    ADMIN_URL_PATH,
    COMPARE_PAGE,
    COMPARE_URL_PATH,
    EXPERIMENTS_PAGE,
    EXPERIMENTS_URL_PATH,
    MODEL_PAGE,
    MODEL_URL_PATH,
    MODELS_PAGE,
    MODELS_URL_PATH,
    MONITORING_PAGE,
    MONITORING_URL_PATH,
    OVERVIEW_PAGE,
    OVERVIEW_URL_PATH,
    PROMOTIONS_PAGE,
    PROMOTIONS_URL_PATH,
    RETRAINING_PAGE,
    RETRAINING_URL_PATH,
    RUN_PAGE,
    RUN_URL_PATH,
    RUNS_PAGE,
    RUNS_URL_PATH,
    present_settings,
)
from services.core.settings import load_settings
from services.experiments.charts import APP_THEME
from services.governance.auth import (
    DEVELOPMENT,
    OIDC,
    PROXY,
    Action,
    identity_source,
    require,
    resolve_identity,
)
from services.governance.config import load_governance

presenting = present_settings(cache.read_query())[0]  # ?present=1: a meeting-room screen
FAVICON = (  # inline SVG, served as a data URI: an icon name would be fetched from Google's CDN
    f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24">'
    f'<rect width="24" height="24" rx="5" fill="{APP_THEME.get("primaryColor", "#1f5aa6")}"/>'
    '<path fill="#fff" transform="translate(2.4 2.4) scale(.8)" d="M2.5 19h19v2h-19v-2zm19.57'
    "-9.36c-.21-.8-1.04-1.28-1.84-1.06L14.92 10l-6.9-6.43-1.93.51 4.14 7.17-4.97 1.33-1.97-1.54"
    '-1.45.39 2.59 4.49L21 11.49c.81-.23 1.28-1.05 1.07-1.85z"/></svg>'
)
st.set_page_config(
    page_title="Flightdeck",
    page_icon=FAVICON,
    layout="wide",
    initial_sidebar_state="collapsed" if presenting else "auto",
)
cache.start_script_run()


def refuse(message: str, *, login: bool = False) -> NoReturn:
    """Serve no page and no navigation: only ``message`` (our own text), and the login button
    when OIDC is configured. Every URL of the app leads here."""
    cache.forget_frame()

    def sign_in() -> None:
        st.title(":material/flight_takeoff: Flightdeck")
        if login:
            st.info(message, icon=":material/lock:")
            st.button("Log in", icon=":material/login:", type="primary", on_click=st.login)
        else:
            st.error(message, icon=":material/lock:")

    st.navigation([st.Page(sign_in, title="Sign in", url_path="sign-in")], position="hidden").run()
    st.stop()
    raise AssertionError("st.stop() returned")  # for the type checker: never reached


try:
    settings = load_settings()
    governance = load_governance(settings.governance_path)
except ConfigurationError as exc:
    refuse(str(exc))
oidc_configured, oidc_user = cache.oidc_login()
source = identity_source(
    settings,
    oidc_configured=oidc_configured,
    listen_address=st.get_option("server.address"),  # unset: every interface
)
if source.kind is None:
    refuse(source.refusal)
dev_users = list(dict.fromkeys([settings.dev_user, *governance.configured_users]))
dev_choice = st.session_state.get("dev_user")  # the sidebar's "Acting as", drawn below
try:
    identity = resolve_identity(
        settings,
        governance,
        source=source.kind,
        oidc_user=oidc_user,
        headers=cache.request_headers() if source.kind == PROXY else (),
        dev_choice=dev_choice if dev_choice in dev_users else None,
    )
    require(identity, Action.VIEW)
except PermissionDenied as exc:
    refuse(str(exc), login=source.kind == OIDC)
cache.use_settings(settings)
cache.use_frame(governance, identity)

pages = {
    "Overview": [
        st.Page(
            OVERVIEW_PAGE,
            title="Overview",
            icon=":material/dashboard:",
            url_path=OVERVIEW_URL_PATH,
            default=True,
        ),
    ],
    "Experiments": [
        st.Page(
            EXPERIMENTS_PAGE,
            title="Experiments",
            icon=":material/science:",
            url_path=EXPERIMENTS_URL_PATH,
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
    "Models": [
        st.Page(
            MODELS_PAGE,
            title="Models",
            icon=":material/model_training:",
            url_path=MODELS_URL_PATH,
        ),
        st.Page(
            MODEL_PAGE,
            title="Model",
            icon=":material/deployed_code:",
            url_path=MODEL_URL_PATH,
            visibility="hidden",
        ),
        st.Page(
            PROMOTIONS_PAGE,
            title="Promotions",
            icon=":material/how_to_reg:",
            url_path=PROMOTIONS_URL_PATH,
        ),
    ],
    "Monitoring": [
        st.Page(
            MONITORING_PAGE,
            title="Monitoring",
            icon=":material/monitoring:",
            url_path=MONITORING_URL_PATH,
        ),
        st.Page(
            RETRAINING_PAGE,
            title="Retraining",
            icon=":material/model_training:",
            url_path=RETRAINING_URL_PATH,
        ),
    ],
    "Governance": [
        st.Page(
            ADMIN_PAGE,
            title="Admin",
            icon=":material/admin_panel_settings:",
            url_path=ADMIN_URL_PATH,
        ),
    ],
}
navigation = st.navigation(
    pages,
    position="hidden" if presenting else "sidebar",  # a meeting-room screen: no navigation
)

try:
    server = cache.server_info(settings)
    problem: FlightdeckError | None = None
except FlightdeckError as exc:
    server, problem = None, exc


def show_loop_health() -> None:
    """One line: when the control loop last passed; amber, with how to start it, when late."""
    try:
        loop = cache.loop_health(settings)
    except FlightdeckError as exc:
        st.caption(
            f":orange[:material/sync_problem: Control loop: unknown] ({escape_markdown(str(exc))})"
        )
        return
    if not loop.late and loop.last is not None:
        st.caption(f":material/sync: Control loop: last pass {ago(loop.last.finished_at)}")
        return
    when = f"last pass {ago(loop.last.finished_at)}" if loop.last else "no pass yet"
    st.caption(
        f":orange[:material/sync_problem: Control loop: {when}]. Alias moves made outside "
        "Flightdeck, job outcomes and stuck promotions wait for it: start "
        "`python -m jobs.scheduler` (`make run` does)."
    )


with st.sidebar:
    st.markdown("## :material/flight_takeoff: Flightdeck")
    st.subheader("Tracking server")
    st.text(settings.tracking_uri)  # st.code would load a 1.5 MB highlighter on every page
    if server:
        st.caption(
            f":green[:material/check_circle: Reachable] · MLflow {escape_markdown(server.version)}"
        )
    else:
        st.caption(":red[:material/error: Not reachable]")
    show_loop_health()
    freshness = st.container()
    st.divider()
    if source.kind == DEVELOPMENT:  # resolved above from the same session key
        st.selectbox("Acting as", dev_users, key="dev_user", help="Development mode only.")
    st.text(f"{identity.name} · {identity.role}", help="Signed in as")  # plain: names are data
    if source.kind == DEVELOPMENT:
        st.warning("Development mode: no authentication", icon=":material/warning:")
    elif source.kind == OIDC:
        st.button("Log out", icon=":material/logout:", on_click=st.logout)

if problem is not None:
    st.error(escape_markdown(str(problem)), icon=":material/cloud_off:")
    if st.button("Retry", icon=":material/refresh:", type="primary"):
        cache.clear_all()
        st.rerun()
    st.stop()

navigation.run()

with freshness:
    fetched_at = cache.oldest_read_this_run()
    if fetched_at:
        st.caption(f"Data fetched {fetched_at:%H:%M:%S} UTC ({ago(fetched_at)})")
    if not presenting and st.button("Refresh data", icon=":material/refresh:", key="refresh-data"):
        cache.clear_all()  # presentation mode refreshes by itself and shows no controls
        st.rerun()
