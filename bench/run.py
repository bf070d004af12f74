"""``make bench``: time Flightdeck's reads against the raw MLflow client on a 10,000-run store.

Seeds the store once (:mod:`bench.store`), serves it with a real ``mlflow server`` on a free
loopback port, times every scenario, writes ``bench/results.md`` and prints its tables. The
server is stopped however the run ends.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pandas as pd
import requests
import streamlit as st
from mlflow.entities import Experiment as MlflowExperiment
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from bench.report import (
    BenchResults,
    Comparison,
    comparisons_table,
    results_markdown,
    timings_table,
)
from bench.store import SeededStore, ensure_store
from bench.timing import REPETITIONS, Timing, time_repeatedly
from services.experiments import experiments_table, runs_table
from services.processes import free_port, start_mlflow_server
from services.settings import PROJECT_ROOT, load_settings
from services.tracking import TrackingGateway

RESULTS_PATH = PROJECT_ROOT / "bench" / "results.md"
APP_PATH = PROJECT_ROOT / "app.py"
FIRST_PAGE_SIZE = 200
COUNTING_PAGE_SIZES = (1_000, 50_000)
"""MLflow's default page of runs, and its ceiling."""
APPTEST_TIMEOUT_S = 60


def main() -> int:
    store = ensure_store()
    print("Starting the MLflow server on the store…", flush=True)
    server = start_mlflow_server(store.data_dir, free_port())
    try:
        results = measure(server.url, store)
    finally:
        server.stop()
    RESULTS_PATH.write_text(results_markdown(results))
    print(f"\n{timings_table(results.timings)}\n\n{comparisons_table(results.comparisons)}")
    print(f"\nWrote {RESULTS_PATH.relative_to(PROJECT_ROOT)}.")
    return 0


def measure(url: str, store: SeededStore) -> BenchResults:
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
    return BenchResults(
        store=store,
        server_version=server_version(url),
        load_average=load_average,
        timings=(page_fetch, list_only, *counted, first_page, raw_first_page, app_page),
        comparisons=comparisons,
        recorded_at=datetime.now(UTC),
    )


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
    return runs_table(page.runs)


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
