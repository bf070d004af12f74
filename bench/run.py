"""``make bench``: time Flightdeck against the raw MLflow client and MLflow's own UI.

Seeds the store once (:mod:`bench.store`, :mod:`bench.history_store`), serves it with a real
``mlflow server`` on a free loopback port, times the earlier scenarios and issue 3's targets
(:mod:`bench.server_side`, and :mod:`bench.ui` in Debian's chromium against a real dashboard),
writes ``bench/results.md`` and prints its tables. Every server is stopped however the run ends.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import requests
import streamlit as st
from mlflow.entities import Experiment as MlflowExperiment
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from bench import server_side, ui
from bench.browser import chromium
from bench.history_store import SeededHistory, ensure_history
from bench.report import (
    BenchResults,
    Comparison,
    Target,
    comparisons_table,
    memory_target,
    ratio_target,
    results_markdown,
    seconds_target,
    targets_table,
    timings_table,
)
from bench.store import SeededStore, ensure_store
from bench.timing import REPETITIONS, Timing, time_repeatedly
from services.core.gateway import TrackingGateway
from services.core.processes import free_port, start_dashboard, start_mlflow_server
from services.core.settings import CREDENTIAL_VARIABLES, PROJECT_ROOT, load_settings
from services.experiments.listing import experiments_table
from services.experiments.runs import column_catalog, default_columns, runs_frame

RESULTS_PATH = PROJECT_ROOT / "bench" / "results.md"
DASHBOARD_LOG = PROJECT_ROOT / "bench" / ".store" / "dashboard.log"
APP_PATH = PROJECT_ROOT / "app.py"
FIRST_PAGE_SIZE = 200
COUNTING_PAGE_SIZES = (1_000, 50_000)
"""MLflow's default page of runs, and its ceiling."""
APPTEST_TIMEOUT_S = 60
COMPARED_RUNS_STRIDE = 5
"""Compare every 5th run of the history experiment by name: 20 of its 100."""
RERUN_LIMIT_S = 0.150
MEMORY_LIMIT_MB = 600.0


@dataclass(frozen=True)
class Issue3:
    """Issue 3's measurements: every timing, the memory reading, the targets."""

    timings: tuple[Timing, ...]
    comparisons: tuple[Comparison, ...]
    """Server-side figures against the raw client, for diagnosis."""
    memory: ui.MemoryReading
    targets: tuple[Target, ...]
    compared_runs: tuple[str, ...]


def main() -> int:
    store = ensure_store()
    history = ensure_history(store)
    print("Starting the MLflow server on the store…", flush=True)
    server = start_mlflow_server(store.data_dir, free_port())
    try:
        results = measure(server.url, store, history)
    finally:
        server.stop()
    RESULTS_PATH.write_text(results_markdown(results))
    print(f"\n{targets_table(results.targets)}")
    print(f"\n{timings_table(results.timings)}\n\n{comparisons_table(results.comparisons)}")
    print(f"\nWrote {RESULTS_PATH.relative_to(PROJECT_ROOT)}.")
    return 0


def measure(url: str, store: SeededStore, history: SeededHistory) -> BenchResults:
    """Run every scenario against the server at ``url``."""
    settings = load_settings(
        {"MLFLOW_TRACKING_URI": url}, secrets_path=store.data_dir / "no-such-secrets.toml"
    )
    gateway = TrackingGateway(settings)  # exports Flightdeck's MLflow client variables
    load_average = os.getloadavg()
    print(f"Timing ({REPETITIONS} repetitions each)…", flush=True)
    # The app script imports from disk when it first runs: doing it first keeps it on the same
    # version of services/ as this process, even while someone edits the working tree.
    with process_environment({"MLFLOW_TRACKING_URI": url}):
        app_page = time_experiments_page_script(store)
    page_fetch, first_page = time_gateway_reads(gateway, store)
    with mlflow_client_defaults():
        list_only, counted, raw_first_page = time_raw_client(MlflowClient(tracking_uri=url), store)
    comparisons = (
        Comparison("Experiments page fetch", page_fetch, list_only),
        *(Comparison("Experiments page fetch", page_fetch, timing) for timing in counted),
        Comparison("First page of runs", first_page, raw_first_page),
    )
    issue3 = measure_issue3(url, gateway, store, history)
    return BenchResults(
        store=store,
        history=history,
        server_version=server_version(url),
        load_average=load_average,
        timings=(
            page_fetch,
            list_only,
            *counted,
            first_page,
            raw_first_page,
            app_page,
            *issue3.timings,
        ),
        comparisons=(*comparisons, *issue3.comparisons),
        targets=issue3.targets,
        memory=issue3.memory,
        compared_runs=issue3.compared_runs,
        recorded_at=datetime.now(UTC),
    )


def measure_issue3(
    url: str,
    gateway: TrackingGateway,
    store: SeededStore,
    history: SeededHistory,
) -> Issue3:
    """Issue 3's targets: server-side figures first, then the browser against a dashboard."""
    experiment_id, runs = store.experiment_id, store.shape.runs
    client = MlflowClient(tracking_uri=url)
    print("Issue 3, server side…", flush=True)
    with mlflow_client_defaults():
        build, raw_build = server_side.time_first_page_build(gateway, client, experiment_id)
    with process_environment({"MLFLOW_TRACKING_URI": url}):
        at = server_side.runs_page_app(experiment_id)
        sorts = server_side.time_sort_reruns(at)
        columns = server_side.time_column_reruns(at)
    sort_column = at.selectbox(key="runs.sort").value
    load_all = server_side.time_load_all(gateway, experiment_id, runs)
    with mlflow_client_defaults():
        raw_sorted = server_side.time_raw_sorted_page(client, experiment_id, str(sort_column))
        raw_load_all = server_side.time_raw_load_all(client, experiment_id, runs)
    compared = compared_runs(gateway, history)
    run_ids = tuple(run_id for run_id, _ in compared)
    metrics = history.shape.metric_keys
    raw_histories = server_side.time_raw_histories(url, run_ids, metrics)
    fd_histories = server_side.time_compare_histories(gateway, dict(compared), metrics)
    print("Issue 3, in the browser…", flush=True)
    dashboard = start_dashboard(free_port(), dashboard_environment(url), DASHBOARD_LOG)
    try:
        with chromium() as browser:
            fd_first = ui.time_visits(
                browser,
                "Runs page: every row in view drawn, fresh browser (Flightdeck)",
                ui.flightdeck_runs_url(dashboard, experiment_id),
                ui.runs_table_painted,
            )
            fd_first_cells = ui.time_visits(
                browser,
                "Runs page: the grid's accessible cells written, fresh browser (Flightdeck)",
                ui.flightdeck_runs_url(dashboard, experiment_id),
                ui.runs_table_shown,
            )
            ml_first = ui.time_visits(
                browser,
                "Runs page: 20 run links visible, fresh browser (MLflow UI)",
                ui.mlflow_runs_url(url, experiment_id),
                ui.mlflow_runs_shown,
            )
            fd_compare = ui.time_visits(
                browser,
                f"Compare {len(run_ids)} runs: both history charts drawn (Flightdeck)",
                ui.flightdeck_compare_url(dashboard, run_ids, metrics),
                ui.flightdeck_charts_drawn(metrics, len(run_ids)),
            )
            ml_compare = ui.time_visits(
                browser,
                f"Chart view of the same {len(run_ids)} runs: both charts drawn (MLflow UI)",
                ui.mlflow_chart_url(url, history.experiment_id, run_ids),
                ui.mlflow_charts_drawn(metrics, len(run_ids)),
                init_script=ui.mlflow_show_first_20_script(history.experiment_id),
            )
            memory = ui.load_all_memory(browser, dashboard, experiment_id, runs)
    finally:
        dashboard.stop()
    targets = (
        ratio_target(
            "1. First page of runs visible in a fresh browser (warm dashboard)",
            fd_first.warm,
            ml_first.warm,
            0.7,
            "MLflow UI",
        ),
        ratio_target(
            "2. Server time to produce the first page (cold cache)",
            build,
            raw_build,
            1.2,
            "raw client",
        ),
        seconds_target("3a. Warm rerun after changing the sort", sorts[2], RERUN_LIMIT_S),
        seconds_target("3b. Warm rerun after changing the columns", columns, RERUN_LIMIT_S),
        ratio_target(f"4. Load all {runs:,} runs", load_all, raw_load_all, 1.2, "raw client"),
        ratio_target(
            f"5a. Compare {len(run_ids)} runs × {len(metrics)} metrics, charts drawn",
            fd_compare.warm,
            raw_histories,
            1.2,
            "raw bulk calls",
        ),
        ratio_target(
            f"5b. Compare {len(run_ids)} runs × {len(metrics)} metrics, charts drawn",
            fd_compare.warm,
            ml_compare.warm,
            0.5,
            "MLflow UI",
        ),
        memory_target(f"6. Dashboard RSS after loading {runs:,} runs", memory, MEMORY_LIMIT_MB),
    )
    timings = (
        build,
        raw_build,
        *sorts,
        raw_sorted,
        columns,
        load_all,
        raw_load_all,
        raw_histories,
        fd_histories,
        *(
            v
            for visits in (fd_first, fd_first_cells, ml_first, fd_compare, ml_compare)
            for v in visits.pair
        ),
    )
    comparisons = (
        Comparison("Runs page first page, cold cache (issue 3)", build, raw_build),
        Comparison("Runs page query after a sort by a metric", sorts[1], raw_sorted),
        Comparison(f"Load all {runs:,} runs", load_all, raw_load_all),
        Comparison("Compare history charts, server side only", fd_histories, raw_histories),
    )
    names = tuple(name for _, name in compared)
    return Issue3(timings, comparisons, memory, targets, names)


def compared_runs(gateway: TrackingGateway, history: SeededHistory) -> list[tuple[str, str]]:
    """(run id, name) of every 5th run of the history experiment, by name: 20 of 100."""
    page = gateway.search_runs([history.experiment_id], max_results=history.shape.runs)
    runs = sorted(page.runs, key=lambda r: r.name)
    if len(runs) != history.shape.runs:
        raise AssertionError(f"The history experiment has {len(runs)} runs.")
    return [(r.run_id, r.name) for r in runs[::COMPARED_RUNS_STRIDE]]


def dashboard_environment(url: str) -> dict[str, str]:
    """The dashboard's environment: this one, on the bench server, without credentials."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    return env


def time_gateway_reads(gateway: TrackingGateway, store: SeededStore) -> tuple[Timing, Timing]:
    """Flightdeck's reads for the Experiments page and for the first page of runs."""
    page_fetch = time_repeatedly(
        "Experiments page fetch (Flightdeck)",
        lambda: experiments_page_fetch(gateway),
        lambda table: check_experiments_table(table, store),
    )
    first_page = time_repeatedly(
        "First page of runs (Flightdeck)",
        lambda: first_runs_page(gateway, store.experiment_id),
        lambda table: check_row_count(table, FIRST_PAGE_SIZE),
    )
    return page_fetch, first_page


def time_raw_client(
    client: MlflowClient, store: SeededStore
) -> tuple[Timing, list[Timing], Timing]:
    """The baselines: listing, counting by paging (one per page size), the first page of runs."""
    list_only = time_repeatedly(
        "search_experiments() only (raw client)",
        lambda: list(client.search_experiments()),
        lambda found: check_listed(found, store),
    )
    counted = [time_counting(client, size, store) for size in COUNTING_PAGE_SIZES]
    first_page = time_repeatedly(
        "search_runs(max_results=200, newest first) (raw client)",
        lambda: raw_first_runs_page(client, store.experiment_id),
        lambda runs: check_row_count(runs, FIRST_PAGE_SIZE),
    )
    return list_only, counted, first_page


def time_experiments_page_script(store: SeededStore) -> Timing:
    """The whole app script on the Experiments page, with cold data caches every time."""
    return time_repeatedly(
        "Experiments page via AppTest (Flightdeck, whole script)",
        run_experiments_page,
        lambda at: check_app_page(at, store),
        before_each=clear_streamlit_data_caches,
    )


def time_counting(client: MlflowClient, page_size: int, store: SeededStore) -> Timing:
    """Time the raw client's count of every experiment's runs with pages of ``page_size``."""
    return time_repeatedly(
        f"search_experiments() + count runs by paging search_runs(max_results={page_size:,}) "
        "(raw client)",
        lambda: count_runs_by_paging(client, page_size),
        lambda counts: check_run_count(counts, store.experiment_id, store.shape.runs),
        warm_up=False,  # each call takes seconds: connection set-up does not matter
    )


# -- the measured actions -----------------------------------------------------------------------


def experiments_page_fetch(gateway: TrackingGateway) -> pd.DataFrame:
    """What the Experiments page reads and builds: experiments, their activity, the table."""
    experiments = gateway.list_experiments()
    activity = {e.experiment_id: gateway.experiment_activity(e.experiment_id) for e in experiments}
    return experiments_table(experiments, activity)


def first_runs_page(gateway: TrackingGateway, experiment_id: str) -> pd.DataFrame:
    """What the Runs page reads and builds first: the newest runs, as a table."""
    page = gateway.search_runs([experiment_id], max_results=FIRST_PAGE_SIZE)
    return runs_frame(page.runs, default_columns(column_catalog(page.runs)), {})


def count_runs_by_paging(client: MlflowClient, page_size: int) -> dict[str, int]:
    """Every experiment's run count, the only way the raw client can: download every run."""
    counts = {}
    for experiment in client.search_experiments():
        total, token = 0, None
        while True:
            page = client.search_runs(
                [experiment.experiment_id], max_results=page_size, page_token=token
            )
            total += len(page)
            token = page.token
            if not token:
                break
        counts[experiment.experiment_id] = total
    return counts


def raw_first_runs_page(client: MlflowClient, experiment_id: str) -> list[MlflowRun]:
    """The same newest runs, straight from the client."""
    return list(
        client.search_runs(
            [experiment_id], max_results=FIRST_PAGE_SIZE, order_by=["attributes.start_time DESC"]
        )
    )


def run_experiments_page() -> AppTest:
    """The whole dashboard script, landing on the Experiments page (the default page)."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=APPTEST_TIMEOUT_S)
    at.run()
    return at


# -- checks: a fast wrong answer must not be recorded ---------------------------------------------


def check_experiments_table(table: pd.DataFrame, store: SeededStore) -> None:
    runs = table.set_index("Name").loc[store.shape.experiment_name, "Runs"]
    expected = f"{store.shape.runs:,}"
    if runs != expected:
        raise AssertionError(f"Flightdeck counted {runs} runs instead of {expected}.")


def check_listed(experiments: list[MlflowExperiment], store: SeededStore) -> None:
    if store.experiment_id not in {e.experiment_id for e in experiments}:
        raise AssertionError("search_experiments() did not list the benchmark experiment.")


def check_run_count(counts: dict[str, int], experiment_id: str, expected: int) -> None:
    if counts.get(experiment_id) != expected:
        raise AssertionError(f"Paging counted {counts.get(experiment_id)} runs, not {expected}.")


def check_row_count(rows: pd.DataFrame | list[MlflowRun], expected: int) -> None:
    if len(rows) != expected:
        raise AssertionError(f"Got {len(rows)} rows instead of {expected}.")


def check_app_page(at: AppTest, store: SeededStore) -> None:
    if at.exception or at.error:
        problems = [str(e.value) for e in (*at.exception, *at.error)]
        raise AssertionError(f"The Experiments page failed: {problems}")
    check_experiments_table(at.dataframe[0].value, store)


# -- plumbing ---------------------------------------------------------------------------------


@contextmanager
def mlflow_client_defaults() -> Iterator[None]:
    """Run the raw client as it comes: without the timeout and retry variables Flightdeck sets.

    MLflow reads them on every request; Flightdeck's 10 s timeout could cut off the
    single 50,000-run page.
    """
    names = (
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    )
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextmanager
def process_environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the app under AppTest, which reads its settings from the environment."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def clear_streamlit_data_caches() -> None:
    """Empty every ``st.cache_data`` cache, so that the next script run reads from the server."""
    # Outside a script run Streamlit warns that it has no runtime; clearing works regardless.
    for name in (
        "streamlit.runtime.caching.cache_data_api",
        "streamlit.runtime.scriptrunner_utils.script_run_context",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)
    st.cache_data.clear()


def server_version(url: str) -> str:
    response = requests.get(f"{url}/version", timeout=10)
    return response.text.strip() if response.ok else "unknown"


if __name__ == "__main__":
    sys.exit(main())
