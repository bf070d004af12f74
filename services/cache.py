"""Cached reads for pages: the one module in ``services/`` that imports Streamlit.

Clients live in ``st.cache_resource``; read results in ``st.cache_data`` with a TTL. Each read
also records when its data left the server, so the sidebar can show the data's freshness.
Failures are never cached: a page that hit an outage asks again on the next rerun.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlencode

import streamlit as st

from services.control_loop import passes as control_loop
from services.control_loop.passes import LoopHealth
from services.core.errors import FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.records import (
    ArtifactEntry,
    Experiment,
    ExperimentActivity,
    Fetched,
    MetricPoint,
    ModelSignature,
    ModelVersionSummary,
    RegisteredModel,
    Run,
    RunPage,
    ServerInfo,
)
from services.core.settings import LOADER_TTL_S, READ_CACHE_TTL_S, STATUS_CACHE_TTL_S, Settings
from services.core.store import Store
from services.core.wiring import Wiring
from services.core.wiring import build as wiring_for
from services.experiments.history_store import HistoryReader, HistoryStore
from services.experiments.run_detail import CHILD_RUNS_MAX, child_runs_filter
from services.experiments.runs import RunLoader, RunSearch, first_page
from services.governance.audit_anchor import AuditAnchor
from services.governance.auth import Identity
from services.governance.config import Governance

if TYPE_CHECKING:  # imported where used: only the Monitoring page needs drift (and pandas)
    import pandas as pd

    from services.monitoring.drift import DriftSummary
    from services.monitoring.runs import MonitoringRun
    from services.overview.fleet import Overview

T = TypeVar("T")

_OLDEST_READ_KEY = "_flightdeck_oldest_read"
_SETTINGS_KEY = "_flightdeck_settings"
_FRAME_KEY = "_flightdeck_frame"


def use_settings(settings: Settings) -> None:
    """Make the settings ``app.py`` built available to the page it runs."""
    st.session_state[_SETTINGS_KEY] = settings


def use_frame(governance: Governance, identity: Identity) -> None:
    """Make the governance and identity ``app.py`` resolved available to the page it runs."""
    st.session_state[_FRAME_KEY] = (governance, identity)


def governance() -> Governance:
    """Roles, promotion policy and gates, as ``app.py`` read them for this script run."""
    if _FRAME_KEY not in st.session_state:
        _rerun_through_the_frame()
    value = st.session_state[_FRAME_KEY][0]
    assert isinstance(value, Governance)
    return value


def identity() -> Identity:
    """The current person, as ``app.py`` resolved them for this script run."""
    if _FRAME_KEY not in st.session_state:
        _rerun_through_the_frame()
    value = st.session_state[_FRAME_KEY][1]
    assert isinstance(value, Identity)
    return value


def oidc_login() -> tuple[bool, dict[str, object] | None]:
    """Whether OIDC login is configured (``[auth]`` in the secrets), and the user's claims."""
    try:
        configured = "auth" in st.secrets
    except FileNotFoundError:  # no secrets file at all
        configured = False
    if not configured:
        return False, None
    user: dict[str, object] = dict(st.user.to_dict())
    return True, user if user.get("is_logged_in") else None


def request_headers() -> list[tuple[str, str]]:
    """The current request's headers as (name, value) pairs, a repeated header once per value,
    so the proxy check can refuse a header sent twice (a dict would keep only one)."""
    headers = st.context.headers
    return [(name, value) for name in headers for value in headers.get_all(name)]


def forget_frame() -> None:
    """Drop the settings, governance and identity of earlier runs: a session whose visitor is
    refused (logged out, or not through the proxy) must not reach a page with them."""
    for key in (_SETTINGS_KEY, _FRAME_KEY):
        st.session_state.pop(key, None)


def settings() -> Settings:
    """The settings ``app.py`` built for this script run."""
    if _SETTINGS_KEY not in st.session_state or _FRAME_KEY not in st.session_state:
        _rerun_through_the_frame()
    value = st.session_state[_SETTINGS_KEY]
    assert isinstance(value, Settings)
    return value


def _rerun_through_the_frame() -> None:
    """Run the page again inside ``app.py``.

    Until ``st.navigation`` first runs, Streamlit treats a ``pages/`` folder as an old-style
    multipage app, so a deep link opened right after the server starts runs the page alone.
    Leaving that mode and rerunning sends the same URL through ``app.py``: every page's
    ``url_path`` equals its file name, so it resolves to the same page.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()


@st.cache_resource(show_spinner=False)
def _wiring(config: Settings) -> Wiring:
    # The governance is this script run's (see wiring()); the store is opened (and migrated)
    # once per process, and a failure is retried on the next run since it is not cached.
    return wiring_for(config, Governance(), gateway(config))


def wiring(config: Settings) -> Wiring:
    """The composition root's services for this process, with the governance ``app.py`` read
    for this script run: what the pages hand to the services that act."""
    return _wiring(config).with_governance(governance())


def store(config: Settings) -> Store:
    """The application store: it chains audit events with the configured key, redacts
    credentials from audit details, and anchors the log's head in MLflow after every
    audited write."""
    return _wiring(config).store


def audit_anchor(config: Settings) -> AuditAnchor:
    """The audit log's anchor in MLflow (the one the store's hook updates)."""
    anchor = _wiring(config).anchor
    assert anchor is not None  # wiring_for always builds one
    return anchor


def loop_health(config: Settings) -> LoopHealth:
    """How fresh the control loop's heartbeat is; one small query, so read on every run."""
    return control_loop.loop_health(store(config), datetime.now(UTC))


@st.cache_resource(show_spinner=False)
def gateway(config: Settings) -> TrackingGateway:
    """One MLflow gateway per distinct configuration, shared by all sessions."""
    return TrackingGateway(config)


@st.cache_data(ttl=STATUS_CACHE_TTL_S, show_spinner=False)
def server_info(settings: Settings) -> ServerInfo:
    """The tracking server's answer to a health and credentials check."""
    return gateway(settings).check_server()


def experiments(settings: Settings, include_deleted: bool) -> list[Experiment]:
    """All experiments, by name."""
    return _note_freshness(_experiments(settings, include_deleted))


def experiment(settings: Settings, experiment_id: str) -> Experiment:
    """One experiment; raises ``NotFound`` for an unknown id."""
    return _note_freshness(_experiment(settings, experiment_id))


def experiment_activity(settings: Settings, experiment_id: str) -> ExperimentActivity:
    """Run count and newest run of one experiment."""
    return _note_freshness(_experiment_activity(settings, experiment_id))


def run(settings: Settings, run_id: str) -> Run:
    """One run by id; raises ``NotFound`` for an unknown id."""
    return _note_freshness(_run(settings, run_id))


def runs_by_id(settings: Settings, run_ids: tuple[str, ...]) -> dict[str, Run]:
    """Many runs at once; ids that match no run are absent."""
    return _note_freshness(_runs_by_id(settings, run_ids))


def child_runs(settings: Settings, experiment_id: str, run_id: str) -> RunPage:
    """The newest nested runs of a run (at most ``CHILD_RUNS_MAX``)."""
    return _note_freshness(_child_runs(settings, experiment_id, run_id))


def full_histories(
    settings: Settings, run_id: str, keys: tuple[str, ...]
) -> dict[str, list[MetricPoint]]:
    """Every point of some metrics of one run, read concurrently."""
    return _note_freshness(_full_histories(settings, run_id, keys))


def history_reader(settings: Settings) -> HistoryReader:
    """Metric histories for charts: finished runs' kept in the application store for every
    session and replica, running runs' for a minute, the rest fetched concurrently. While the
    store cannot be opened, every history is fetched (and opening it is tried again next run)."""
    try:
        return _history_reader(settings)
    except FlightdeckError:
        return _fetching_history_reader(settings)


@st.cache_resource(show_spinner=False)
def _history_reader(settings: Settings) -> HistoryReader:
    return HistoryReader(gateway(settings).metric_histories, HistoryStore(store(settings)))


@st.cache_resource(show_spinner=False)
def _fetching_history_reader(settings: Settings) -> HistoryReader:
    return HistoryReader(gateway(settings).metric_histories, None)


def artifacts(settings: Settings, run_id: str, path: str | None = None) -> list[ArtifactEntry]:
    """The entries directly under ``path`` in a run's artifacts."""
    return _note_freshness(_artifacts(settings, run_id, path))


def model_versions(settings: Settings, filter_string: str) -> list[ModelVersionSummary]:
    """Registered model versions matching an MLflow filter."""
    return _note_freshness(_model_versions(settings, filter_string))


def versions_of(settings: Settings, name: str) -> list[ModelVersionSummary]:
    """Every version of one registered model, whatever its name holds."""
    return _note_freshness(_versions_of(settings, name))


def model_aliases(settings: Settings, name: str) -> dict[str, int]:
    """A registered model's aliases and the versions they point at."""
    return _note_freshness(_model_aliases(settings, name))


def artifact_bytes(settings: Settings, run_id: str, path: str) -> bytes:
    """The content of one artifact file. Check its size first: this reads it whole."""
    return _note_freshness(_artifact_bytes(settings, run_id, path))


def runs_first_page(settings: Settings, search: RunSearch) -> tuple[list[Run], bool]:
    """The first page of an explorer search (all OR branches merged), and whether more exist."""
    return _note_freshness(_runs_first_page(settings, search))


def run_loader(settings: Settings, search: RunSearch) -> RunLoader:
    """The background "load all" of a search, shared by every session that asks for it.

    A load that failed is not reused: asking again starts afresh, as with any uncached failure.
    """
    loader = _run_loader(settings, search)
    if loader.done and loader.error is not None:
        _run_loader.clear()
        loader = _run_loader(settings, search)
    return loader.start()


def read_query() -> dict[str, list[str]]:
    """The page's query parameters, each with all its values."""
    return {key: st.query_params.get_all(key) for key in st.query_params}


def write_query(query: Mapping[str, Sequence[str]]) -> None:
    """Replace the page's query parameters, so the URL always matches the view."""
    if read_query() != {k: list(v) for k, v in query.items()}:
        st.query_params.from_dict({k: list(v) for k, v in query.items()})


def share_url(query: Mapping[str, Sequence[str]]) -> str:
    """The address of the current page with ``query``, for a "copy link" control."""
    base = (st.context.url or "").split("?", 1)[0]
    encoded = urlencode([(k, v) for k, values in query.items() for v in values])
    return f"{base}?{encoded}" if encoded else base


def oldest_read_this_run() -> datetime | None:
    """When the oldest data shown by this script run was fetched from MLflow."""
    value = st.session_state.get(_OLDEST_READ_KEY)
    return value if isinstance(value, datetime) else None


def start_script_run() -> None:
    """Forget the previous run's freshness; call once at the top of ``app.py``."""
    st.session_state.pop(_OLDEST_READ_KEY, None)


def clear_all() -> None:
    """Drop every cached read, e.g. after a write or when the user asks for fresh data."""
    st.cache_data.clear()
    _run_loader.clear()


def _note_freshness(result: Fetched[T]) -> T:
    oldest = oldest_read_this_run()
    if oldest is None or result.fetched_at < oldest:
        st.session_state[_OLDEST_READ_KEY] = result.fetched_at
    return result.value


def _fetch(read: Callable[[], T]) -> Fetched[T]:
    return Fetched(read(), datetime.now(UTC))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _experiments(settings: Settings, include_deleted: bool) -> Fetched[list[Experiment]]:
    return _fetch(lambda: gateway(settings).list_experiments(include_deleted))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _experiment(settings: Settings, experiment_id: str) -> Fetched[Experiment]:
    return _fetch(lambda: gateway(settings).get_experiment(experiment_id))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _experiment_activity(settings: Settings, experiment_id: str) -> Fetched[ExperimentActivity]:
    return _fetch(lambda: gateway(settings).experiment_activity(experiment_id))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _run(settings: Settings, run_id: str) -> Fetched[Run]:
    return _fetch(lambda: gateway(settings).get_run(run_id))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _full_histories(
    settings: Settings, run_id: str, keys: tuple[str, ...]
) -> Fetched[dict[str, list[MetricPoint]]]:
    return _fetch(lambda: gateway(settings).full_histories(run_id, keys))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _artifacts(settings: Settings, run_id: str, path: str | None) -> Fetched[list[ArtifactEntry]]:
    return _fetch(lambda: gateway(settings).list_artifacts(run_id, path))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _model_versions(settings: Settings, filter_string: str) -> Fetched[list[ModelVersionSummary]]:
    return _fetch(lambda: gateway(settings).model_versions(filter_string))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _versions_of(settings: Settings, name: str) -> Fetched[list[ModelVersionSummary]]:
    return _fetch(lambda: gateway(settings).versions_of(name))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _model_aliases(settings: Settings, name: str) -> Fetched[dict[str, int]]:
    return _fetch(lambda: gateway(settings).model_aliases(name))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=32)
def _artifact_bytes(settings: Settings, run_id: str, path: str) -> Fetched[bytes]:
    def read() -> bytes:
        with tempfile.TemporaryDirectory(prefix="flightdeck-artifact-") as folder:
            return Path(gateway(settings).download_artifact(run_id, path, folder)).read_bytes()

    return _fetch(read)


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _runs_first_page(settings: Settings, search: RunSearch) -> Fetched[tuple[list[Run], bool]]:
    return _fetch(
        lambda: first_page(search, gateway(settings).search_runs, settings.runs_page_size)
    )


@st.cache_resource(ttl=LOADER_TTL_S, max_entries=4, show_spinner=False)
def _run_loader(settings: Settings, search: RunSearch) -> RunLoader:
    return RunLoader(search, gateway(settings).search_runs)


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _child_runs(settings: Settings, experiment_id: str, run_id: str) -> Fetched[RunPage]:
    return _fetch(
        lambda: gateway(settings).search_runs(
            [experiment_id], filter_string=child_runs_filter(run_id), max_results=CHILD_RUNS_MAX
        )
    )


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _runs_by_id(settings: Settings, run_ids: tuple[str, ...]) -> Fetched[dict[str, Run]]:
    return _fetch(lambda: gateway(settings).runs_by_id(run_ids))


# -- model registry -------------------------------------------------------------------------------


def registered_models(settings: Settings) -> list[RegisteredModel]:
    """Every registered model, by name."""
    return _note_freshness(_registered_models(settings))


def registered_model(settings: Settings, name: str) -> RegisteredModel:
    """One registered model; raises ``NotFound`` for an unknown name."""
    return _note_freshness(_registered_model(settings, name))


def model_version_signature(settings: Settings, name: str, version: int) -> ModelSignature | None:
    """A model version's input and output signature; None when it declares none."""
    return _note_freshness(_model_version_signature(settings, name, version))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False)
def _registered_models(settings: Settings) -> Fetched[list[RegisteredModel]]:
    return _fetch(lambda: gateway(settings).registered_models())


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _registered_model(settings: Settings, name: str) -> Fetched[RegisteredModel]:
    return _fetch(lambda: gateway(settings).get_registered_model(name))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _model_version_signature(
    settings: Settings, name: str, version: int
) -> Fetched[ModelSignature | None]:
    return _fetch(lambda: gateway(settings).model_version_signature(name, version))


# -- fleet overview -------------------------------------------------------------------------------


def fleet_overview(settings: Settings) -> Overview:
    """Every model's health, the fleet counts and the week's changes."""
    return _note_freshness(_fleet_overview(settings, wiring(settings)))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=4)
def _fleet_overview(settings: Settings, _services: Wiring) -> Fetched[Overview]:
    from services.overview.fleet import fleet_overview as read

    return _fetch(lambda: read(_services))


# -- drift monitoring -----------------------------------------------------------------------------


def monitoring_runs(settings: Settings, model: str) -> list[MonitoringRun]:
    """A model's monitoring batches, oldest first."""
    return _note_freshness(_monitoring_runs(settings, model))


def latest_monitoring(
    settings: Settings, models: Sequence[str], per_model: int
) -> dict[str, list[MonitoringRun]]:
    """The newest ``per_model`` monitoring batches of each of ``models``, oldest first."""
    return _note_freshness(_latest_monitoring(settings, tuple(models), per_model))


def monitored_models(settings: Settings) -> list[str]:
    """The registered models with at least one monitoring batch, by name."""
    names = [model.name for model in registered_models(settings)]
    latest = latest_monitoring(settings, names, 1)
    return [name for name in names if latest.get(name)]


def drift_summary(settings: Settings, run_id: str) -> DriftSummary:
    """One batch's compact drift summary (``drift/summary.json``)."""
    return _note_freshness(_drift_summary(settings, run_id))


def drift_reference(settings: Settings, model: str, alias: str) -> tuple[int, pd.DataFrame]:
    """The version an alias points at and its training run's reference sample."""
    return _note_freshness(_drift_reference(settings, model, alias))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _monitoring_runs(settings: Settings, model: str) -> Fetched[list[MonitoringRun]]:
    from services.monitoring import runs as monitoring

    return _fetch(lambda: monitoring.monitoring_runs(gateway(settings), model))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=8)
def _latest_monitoring(
    settings: Settings, models: tuple[str, ...], per_model: int
) -> Fetched[dict[str, list[MonitoringRun]]]:
    from services.monitoring import runs as monitoring

    return _fetch(lambda: monitoring.latest_monitoring_runs(gateway(settings), models, per_model))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=64)
def _drift_summary(settings: Settings, run_id: str) -> Fetched[DriftSummary]:
    from services.monitoring import runs as monitoring

    return _fetch(lambda: monitoring.load_summary(gateway(settings), run_id))


@st.cache_data(ttl=READ_CACHE_TTL_S, show_spinner=False, max_entries=8)
def _drift_reference(
    settings: Settings, model: str, alias: str
) -> Fetched[tuple[int, pd.DataFrame]]:
    from services.monitoring import runs as monitoring

    return _fetch(lambda: monitoring.reference_for(gateway(settings), model, alias))
