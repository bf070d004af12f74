"""Issue 3's server-side measurements: the runs page's reads, its reruns, "Load all", histories.

Flightdeck's code is called as the page calls it, without Streamlit's caches unless a scenario
says otherwise; each baseline is the raw MLflow client (or the raw HTTP call) doing the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pandas as pd
import requests
from mlflow.entities import Run as MlflowRun
from mlflow.tracking import MlflowClient
from streamlit.testing.v1 import AppTest

from bench.timing import REPETITIONS, Action, Timing, time_alternately, time_repeatedly
from services.core.gateway import BULK_HISTORY_PATH, HISTORY_POINTS, TrackingGateway
from services.core.links import RunsView
from services.core.records import Run
from services.core.settings import PROJECT_ROOT
from services.experiments.charts import run_colors
from services.experiments.history import history_series
from services.experiments.history_chart import history_chart
from services.experiments.runs import (
    RunLoader,
    build_search,
    column_catalog,
    default_columns,
    experiment_names,
    first_page,
    runs_frame,
)

APP_PATH = PROJECT_ROOT / "app.py"
RUNS_PAGE_PATH = "pages/runs.py"
APPTEST_TIMEOUT_S = 60
FIRST_PAGE_SIZE = 200
LOAD_ALL_PAGE_SIZE = 1_000
LOADER_POLL_S = 0.005
FIRST_PAGE_REPETITIONS = 15


# -- 2. the first page, server side ---------------------------------------------------------------


def time_first_page_build(
    gateway: TrackingGateway, client: MlflowClient, experiment_id: str
) -> tuple[Timing, Timing]:
    """What the runs page's cached read and table do on a cold cache, against the raw client.

    The two take turns, :data:`FIRST_PAGE_REPETITIONS` times each: the server answers this
    query in one of two speeds (about 0.15 s or 0.27 s over HTTP here), and five calls in a
    row can land mostly in one of them.
    """
    names = experiment_names(gateway.list_experiments())  # a separate cached read on the page

    def build() -> pd.DataFrame:
        runs, _ = first_page(
            build_search(RunsView(experiment_ids=(experiment_id,))),
            gateway.search_runs,
            FIRST_PAGE_SIZE,
        )
        return runs_frame(runs, default_columns(column_catalog(runs)), names)

    def raw() -> list[MlflowRun]:
        return list(
            client.search_runs(
                [experiment_id],
                max_results=FIRST_PAGE_SIZE,
                order_by=["attributes.start_time DESC"],
            )
        )

    return time_alternately(
        Action(
            "First page of runs: first_page + runs_frame (Flightdeck, taking turns)",
            build,
            lambda frame: _check_rows(frame, FIRST_PAGE_SIZE),
        ),
        Action(
            "search_runs(max_results=200, newest first) (raw client, taking turns)",
            raw,
            lambda runs: _check_rows(runs, FIRST_PAGE_SIZE),
        ),
        FIRST_PAGE_REPETITIONS,
    )


def time_raw_sorted_page(client: MlflowClient, experiment_id: str, metric_column: str) -> Timing:
    """The query the runs page makes after a sort by a metric, straight from the client."""
    order_by = [f"metrics.`{metric_column.removeprefix('metrics.')}` DESC"]
    return time_repeatedly(
        f"search_runs(max_results=200, order_by {metric_column} DESC) (raw client)",
        lambda: list(
            client.search_runs(
                [experiment_id],
                max_results=FIRST_PAGE_SIZE,
                order_by=[*order_by, "attributes.start_time DESC"],
            )
        ),
        lambda runs: _check_rows(runs, FIRST_PAGE_SIZE),
    )


# -- 3. warm reruns of the runs page (AppTest) ----------------------------------------------------


def runs_page_app(experiment_id: str) -> AppTest:
    """The whole app on the runs page of one experiment, run twice so that caches are warm."""
    at = AppTest.from_file(str(APP_PATH), default_timeout=APPTEST_TIMEOUT_S)
    at.query_params["experiment_ids"] = experiment_id
    at.run()
    at.switch_page(RUNS_PAGE_PATH)
    at.query_params["experiment_ids"] = experiment_id
    at.run()
    _check_app(at)
    at.run()
    _check_app(at)
    return at


def time_rerun(at: AppTest, change: Callable[[AppTest], None]) -> float:
    """Seconds of the rerun that follows one widget change."""
    change(at)
    started = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - started
    _check_app(at)
    return seconds


def time_sort_reruns(at: AppTest) -> tuple[Timing, Timing, Timing, Timing]:
    """Sort by metrics never sorted by before, then by the same ones again (warm).

    The page builds its MLflow query from the sort in the URL, which a rerun writes only at its
    end: the rerun right after a sort change re-sorts the runs already shown, and the MLflow
    query for the new order runs on the rerun after that. Both reruns are timed.
    """
    metrics = [c for c in at.multiselect(key="runs.columns").value if c.startswith("metrics.")]
    if len(metrics) < REPETITIONS:
        raise AssertionError(f"The runs page shows too few metric columns: {metrics}")
    cold = [_sort_and_rerun(at, metric) for metric in metrics[:REPETITIONS]]
    warm = [_sort_and_rerun(at, metric) for metric in metrics[:REPETITIONS]]
    return (
        _report(Timing("Rerun after sorting by a new metric", tuple(c for c, _ in cold))),
        _report(
            Timing("Next rerun after that sort (queries the new order)", tuple(n for _, n in cold))
        ),
        _report(
            Timing(
                "Rerun after sorting by a metric sorted by before (warm)", tuple(c for c, _ in warm)
            )
        ),
        _report(Timing("Next rerun after that warm sort", tuple(n for _, n in warm))),
    )


def _sort_and_rerun(at: AppTest, column: str) -> tuple[float, float]:
    """Seconds of the rerun after choosing ``column`` in "Sort by", and of one more rerun."""
    change = time_rerun(at, lambda a: a.selectbox(key="runs.sort").set_value(column))
    return change, time_rerun(at, lambda a: None)


def time_column_reruns(at: AppTest) -> Timing:
    """Reruns after adding one column, or removing it again, the sort unchanged (warm)."""
    picker = at.multiselect(key="runs.columns")
    extra = next(c for c in picker.options if c not in picker.value)
    time_rerun(at, lambda a: _toggle_column(a, extra))  # untimed warm-up
    seconds = tuple(time_rerun(at, lambda a: _toggle_column(a, extra)) for _ in range(REPETITIONS))
    return _report(Timing("Rerun after changing the columns (warm)", seconds))


def _toggle_column(at: AppTest, column: str) -> None:
    """Add ``column`` to the table, or remove it when it is there."""
    picker = at.multiselect(key="runs.columns")
    chosen = list(picker.value)
    picker.set_value([c for c in chosen if c != column] if column in chosen else [*chosen, column])


def _check_app(at: AppTest) -> None:
    if at.exception or at.error:
        problems = [str(e.value) for e in (*at.exception, *at.error)]
        raise AssertionError(f"The runs page failed: {problems}")
    if not at.dataframe:
        raise AssertionError("The runs page shows no table.")


# -- 4. "Load all" ---------------------------------------------------------------------------------


def time_load_all(gateway: TrackingGateway, experiment_id: str, expected: int) -> Timing:
    """``RunLoader`` over every run of the experiment, until its thread is done."""

    def load() -> list[Run]:
        search = build_search(RunsView(experiment_ids=(experiment_id,)))
        loader = RunLoader(search, gateway.search_runs).start()
        while not loader.done:
            time.sleep(LOADER_POLL_S)
        if loader.error:
            raise AssertionError(f"Load all failed: {loader.error}")
        return loader.runs

    return time_repeatedly(
        f"Load all {expected:,} runs: RunLoader (Flightdeck)",
        load,
        lambda runs: _check_rows(runs, expected),
        warm_up=False,
    )


def time_raw_load_all(client: MlflowClient, experiment_id: str, expected: int) -> Timing:
    """The raw client's paginated loop, pages of 1,000 until there is no token."""

    def load() -> list[MlflowRun]:
        runs: list[MlflowRun] = []
        token = None
        while True:
            page = client.search_runs(
                [experiment_id], max_results=LOAD_ALL_PAGE_SIZE, page_token=token
            )
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    return time_repeatedly(
        f"Load all {expected:,} runs: search_runs(max_results=1,000) page loop (raw client)",
        load,
        lambda runs: _check_rows(runs, expected),
        warm_up=False,
    )


# -- 5. baseline A: the raw bulk history calls -----------------------------------------------------


def time_raw_histories(url: str, run_ids: tuple[str, ...], metrics: tuple[str, ...]) -> Timing:
    """One ``get-history-bulk-interval`` request per metric, 320 points a run, as MLflow's UI."""
    session = requests.Session()

    def fetch() -> dict[str, set[str]]:
        found = {}
        for metric in metrics:
            params: list[tuple[str, str | int]] = [("run_ids", r) for r in run_ids]
            params += [("metric_key", metric), ("max_results", HISTORY_POINTS)]
            response = session.get(url + BULK_HISTORY_PATH, params=params, timeout=60)
            response.raise_for_status()
            found[metric] = {m["run_id"] for m in response.json()["metrics"]}
        return found

    def check(found: dict[str, set[str]]) -> None:
        for metric, runs in found.items():
            if runs != set(run_ids):
                raise AssertionError(f"The bulk history of {metric} has {len(runs)} runs.")

    return time_repeatedly(
        f"{len(run_ids)} runs × {len(metrics)} metrics: raw get-history-bulk-interval calls",
        fetch,
        check,
    )


def time_compare_histories(
    gateway: TrackingGateway, runs: dict[str, str], metrics: tuple[str, ...]
) -> Timing:
    """The compare page's history charts without a browser: fetch, series, chart, JSON.

    ``runs`` maps run id to name. No cache: every call asks the server.
    """
    run_ids = tuple(runs)
    colors = run_colors(run_ids)

    def build() -> list[int]:
        traces = []
        for metric in metrics:
            series = history_series(gateway.metric_histories(run_ids, metric), "step", 0.0)
            chart = history_chart(metric, series, runs, colors)
            chart.to_json()  # what st.altair_chart serialises
            traces.append(
                len({row["run"] for row in chart.to_dict()["layer"][0]["data"]["values"]})
            )
        return traces

    def check(traces: list[int]) -> None:
        if traces != [len(run_ids)] * len(metrics):
            raise AssertionError(f"History charts with {traces} lines, not {len(run_ids)} each.")

    return time_repeatedly(
        f"{len(run_ids)} runs × {len(metrics)} metrics: metric_histories + history_series + "
        "history_chart + to_json (Flightdeck, server side)",
        build,
        check,
    )


# -- helpers ---------------------------------------------------------------------------------------


def _check_rows(rows: pd.DataFrame | list[Run] | list[MlflowRun], expected: int) -> None:
    if len(rows) != expected:
        raise AssertionError(f"Got {len(rows)} rows instead of {expected}.")


def _report(timing: Timing) -> Timing:
    print(
        f"  {timing.label}: median {timing.median:.3f} s "
        f"(min {timing.minimum:.3f}, max {timing.maximum:.3f}, n={len(timing.seconds)})",
        flush=True,
    )
    return timing
