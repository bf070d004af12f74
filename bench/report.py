"""Render the benchmark's figures as Markdown: ``bench/results.md`` and the tables on stdout."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version

from bench.history_store import SeededHistory
from bench.store import SEEDING_PATH_NOTE, SeededStore
from bench.timing import REPETITIONS, Timing
from bench.ui import MemoryReading


@dataclass(frozen=True)
class Comparison:
    """Flightdeck's way of getting something against the raw client's way."""

    scenario: str
    flightdeck: Timing
    baseline: Timing

    @property
    def ratio(self) -> float:
        """Flightdeck's median over the baseline's: below 1 means Flightdeck is faster."""
        return self.flightdeck.median / self.baseline.median


@dataclass(frozen=True)
class Target:
    """One of issue 3's performance targets: a figure, its baseline, the limit, met or not."""

    name: str
    figure: str
    """The measured figure as shown, e.g. ``1.234 s (1.1–1.5)``."""
    baseline: str
    """The baseline as shown, or ``—`` for an absolute limit."""
    value: float
    """What the limit applies to: the ratio to the baseline, or the absolute figure."""
    limit: float
    limit_text: str
    """The limit as shown, e.g. ``≤ 0.7 × MLflow UI``."""

    @property
    def met(self) -> bool:
        return self.value <= self.limit

    @property
    def ratio_text(self) -> str:
        return f"{self.value:.3g}" if self.baseline != "—" else "—"


def ratio_target(name: str, measured: Timing, baseline: Timing, limit: float, of: str) -> Target:
    """A target on the ratio of two medians, e.g. at most 1.2 times the raw client."""
    return Target(
        name,
        timing_text(measured),
        f"{baseline.label}: {timing_text(baseline)}",
        measured.median / baseline.median,
        limit,
        f"≤ {limit:g} × {of}",
    )


def seconds_target(name: str, measured: Timing, limit_s: float) -> Target:
    """A target on a median in seconds."""
    return Target(
        name, timing_text(measured), "—", measured.median, limit_s, f"≤ {limit_s * 1000:.0f} ms"
    )


def memory_target(name: str, reading: MemoryReading, limit_mb: float) -> Target:
    """A target on the dashboard's resident memory after loading every run."""
    figure = f"{reading.after_mb:.0f} MB (before loading: {reading.before_mb:.0f} MB)"
    return Target(name, figure, "—", reading.after_mb, limit_mb, f"≤ {limit_mb:.0f} MB")


def timing_text(timing: Timing) -> str:
    """Median with min–max, in seconds."""
    if len(timing.seconds) == 1:
        return f"{timing.median:.3f} s (single)"
    return f"{timing.median:.3f} s ({timing.minimum:.3f}–{timing.maximum:.3f})"


@dataclass(frozen=True)
class BenchResults:
    """Everything one ``make bench`` measured."""

    store: SeededStore
    history: SeededHistory
    server_version: str
    load_average: tuple[float, float, float]
    """The machine's 1, 5 and 15 minute load when timing began (it is shared)."""
    timings: tuple[Timing, ...]
    comparisons: tuple[Comparison, ...]
    targets: tuple[Target, ...]
    memory: MemoryReading
    compared_runs: tuple[str, ...]
    """The names of the runs of the compare scenario."""
    recorded_at: datetime


def timings_table(timings: tuple[Timing, ...]) -> str:
    """Every measurement with its median, min and max."""
    rows = [
        "| Measurement | Median (s) | Min (s) | Max (s) |",
        "|---|---:|---:|---:|",
    ]
    rows += [f"| {t.label} | {t.median:.3f} | {t.minimum:.3f} | {t.maximum:.3f} |" for t in timings]
    return "\n".join(rows)


def targets_table(targets: tuple[Target, ...]) -> str:
    """Issue 3's targets: figure, baseline, ratio, limit and whether it is met."""
    rows = [
        "| Target | Flightdeck: median (min–max) | Baseline: median (min–max) | Ratio | Limit "
        "| Met |",
        "|---|---|---|---:|---|---|",
    ]
    rows += [
        f"| {t.name} | {t.figure} | {t.baseline} | {t.ratio_text} | {t.limit_text} "
        f"| {'**met**' if t.met else '**NOT MET**'} |"
        for t in targets
    ]
    return "\n".join(rows)


def comparisons_table(comparisons: tuple[Comparison, ...]) -> str:
    """Flightdeck against each baseline: both medians and their ratio."""
    rows = [
        "| Scenario | Flightdeck median (s) | Baseline | Baseline median (s) "
        "| Ratio (Flightdeck / baseline) |",
        "|---|---:|---|---:|---:|",
    ]
    rows += [
        f"| {c.scenario} | {c.flightdeck.median:.3f} | {c.baseline.label} "
        f"| {c.baseline.median:.3f} | {c.ratio:.3g} |"
        for c in comparisons
    ]
    return "\n".join(rows)


def results_markdown(results: BenchResults) -> str:
    """The whole of ``bench/results.md``."""
    store, shape = results.store, results.store.shape
    history, hshape = results.history, results.history.shape
    load = ", ".join(f"{value:.2f}" for value in results.load_average)
    missed = [t.name for t in results.targets if not t.met]
    verdict = (
        "All of issue 3's targets are met."
        if not missed
        else f"{len(missed)} of {len(results.targets)} targets are not met: " + "; ".join(missed)
    )
    return f"""# Benchmark results

Written by `make bench` (`python -m bench.run`) on {results.recorded_at:%Y-%m-%d %H:%M} UTC.

## Machine

- CPUs (`nproc`): {os.cpu_count()}; load average when timing began: {load} (a shared machine)
- {platform.platform()}
- Python {platform.python_version()}, MLflow {version("mlflow")} (the server reports \
{results.server_version}), Streamlit {version("streamlit")}, pandas {version("pandas")}, \
Playwright {version("playwright")} driving Debian's chromium (headless)
- Server: `mlflow server` on SQLite with 1 worker on loopback, started by
  `services.core.processes.start_mlflow_server`; the dashboard is `streamlit run app.py` started by
  `services.core.processes.start_dashboard` against it. Browser, dashboard and server share the 2
  cores.

## Store

- Experiment `{shape.experiment_name}` (id {store.experiment_id}): {shape.runs:,} finished runs, \
each with {shape.params_per_run} params, {shape.metrics_per_run} metrics (one value each) and \
{shape.tags_per_run} tags, plus the `mlflow.runName` tag MLflow adds; \
{_seeded_text(store.seeded_now, store.seeded_at, store.seed_seconds)}.
- Experiment `{hshape.experiment_name}` (id {history.experiment_id}): {hshape.runs} finished runs, \
each logging {" and ".join(f"`{k}`" for k in hshape.metric_keys)} at every one of \
{hshape.steps:,} steps ({hshape.metric_rows:,} metric rows), `log_batch` in chunks of 1,000; \
{_seeded_text(history.seeded_now, history.seeded_at, history.seed_seconds)}.
- MLflow's empty `Default` experiment is the only other one. Values are deterministic; run ids are
  MLflow's random UUIDs. Both live in `bench/.store/`.
- {SEEDING_PATH_NOTE}

## Issue 3: performance targets

{verdict}

{targets_table(results.targets)}

Memory: the dashboard's process tree held {results.memory.before_mb:.0f} MB before "Load all \
runs" and {results.memory.after_mb:.0f} MB once the table showed all {shape.runs:,} runs \
({results.memory.load_seconds:.1f} s after the click, single measurement).

## Timings

Wall-clock seconds over {REPETITIONS} timed repetitions (n = 1 where marked "first visit", 15 where
marked "taking turns"),
client and server on the same machine. Server-side measurements first make one untimed warm-up
call, as a running dashboard would have, except the full downloads of every run. The machine is
shared (see the load average), so figures move between runs: compare medians, and rerun before
reading much into a small change.

{timings_table(results.timings)}

## Flightdeck against the raw MLflow client

{comparisons_table(results.comparisons)}

## What is measured

### Issue 3

- **First page of runs visible in a fresh browser.** Every visit opens a new browser context (no
  cache, cookies or storage) and is timed from `page.goto` until the data is on the page.
  Flightdeck: `/runs?experiment_ids={store.experiment_id}` until the table has drawn every row in
  view. Streamlit's table is a canvas, so the check reads its pixels: each 35 px row band below
  the header holds at least 200 dark pixels (text), in every band the canvas shows (at least
  5; about 10 at this window size); a screenshot taken at that moment shows the rows with
  their data. The grid writes an accessible copy of its cells (`[role=gridcell]`) into the
  page later; the time until cells holding run names are attached, which earlier runs of this
  benchmark measured, is reported as well ("accessible cells written"). The dashboard had served
  one untimed visit
  first, so its caches (60 s TTL) are warm, as on a running dashboard; that first visit after
  the dashboard started is reported on its own ("first visit after start"; it also pays for the
  first import of the pages). MLflow's UI: `/#/experiments/{store.experiment_id}/runs?\
workflowType=machine_learning` until its runs table holds 20 links to runs
  (`a[href*='/runs/']` whose href ends in a run id), also after one untimed visit.
- **Server time to produce the first page.** What the runs page's cached read and table do on a
  cold cache: `first_page(build_search(RunsView(experiment_ids=(id,))), gateway.search_runs, 200)`
  then `runs_frame(runs, default_columns(column_catalog(runs)), names)`, against
  `MlflowClient.search_runs([id], max_results=200, order_by=["attributes.start_time DESC"])`.
  The two take turns, 15 times each after one warm-up call each: the server answers this query
  at one of two speeds (about 0.15 s or 0.27 s over HTTP on this machine), and five calls in a
  row can land mostly on one of them, which decided the ratio of an earlier run.
- **Warm reruns (server time).** Streamlit's `AppTest` runs `app.py` switched to
  `pages/runs.py` with `experiment_ids={store.experiment_id}`, twice, so caches are warm; then
  `at.run()` is timed after a widget change. *Sort*: "Sort by" (`runs.sort`) set to each of 5
  metric columns in turn (new orders), then to the same 5 again (warm). The page builds its
  MLflow query from the sort in the URL, which a rerun writes only at its end, so the rerun
  right after a sort change re-sorts the runs already shown and the MLflow query for the new
  order (`order_by` the metric) runs on the *next* rerun: both are timed ("Next rerun after
  that sort"). The raw client's query for such an order is timed too. *Columns*: one column
  added to or removed from `runs.columns`, 5 times after one untimed change. The limit applies
  to the warm reruns.
- **"Load all" for {shape.runs:,} runs.** `RunLoader(build_search(...), gateway.search_runs)\
.start()` until it is done (pages of 1,000, newest first), against the raw client's loop
  `search_runs([id], max_results=1000, page_token=token)` until no token. No warm-up.
- **Compare {len(results.compared_runs)} runs × {len(hshape.metric_keys)} metrics over \
{hshape.steps:,} steps.** The runs are `{results.compared_runs[0]}`, \
`{results.compared_runs[1]}`, … `{results.compared_runs[-1]}` (every 5th run of \
`{hshape.experiment_name}` by name). Flightdeck: `/compare?run_ids=…&metrics=\
{"&metrics=".join(hshape.metric_keys)}` in a fresh browser context until both history charts
  (the Vega-Lite chart whose title is the metric) have {len(results.compared_runs)} drawn lines
  (`.lines_marks path`), after one untimed visit (histories are cached for 60 s; the first
  visit is reported on its own). Baseline A: the same histories as raw HTTP,
  `GET /ajax-api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids=…&metric_key=…\
&max_results=320`, one request per metric with `requests`. Baseline B: MLflow's own chart view,
  `/#/experiments/{history.experiment_id}/runs?compareRunsMode=CHART&searchFilter=\
attributes.run_id IN (…the {len(results.compared_runs)} ids…)`. MLflow charts only the runs
  that are visible in its runs list, the first 10 by default; the choice ("Show first 20" in
  the eye menu of the runs list) is kept in the browser's local storage, not in the URL, so
  each fresh context gets it set before the page loads (`runsHiddenMode: FIRST_20_RUNS` under
  MLflow's `ExperimentPage-["{history.experiment_id}"]` key), and nothing else. Timed until both
  chart cards (`train_loss`, `val_loss`) list {len(results.compared_runs)} runs in their legend
  and draw at least {len(results.compared_runs)} non-empty lines (`.scatterlayer path.js-line`).
  MLflow's UI fetches the histories with the same endpoint and 320 points a run. For diagnosis,
  the compare page's server-side share is timed without a browser or cache too:
  `gateway.metric_histories` per metric, `history_series`, `history_chart` and `to_json()`.
- **Dashboard memory after loading {shape.runs:,} runs.** In the browser, the runs page of
  `{shape.experiment_name}`, a click on "Load all runs", until the caption reads
  "{shape.runs:,} runs"; then the RSS (`VmRSS` in `/proc`) of the `streamlit run` process and all
  its descendants. It had served the visits above before (its caches hold their data).

### Earlier measurements

- **Experiments page fetch (Flightdeck)**: what the Experiments page reads with cold caches:
  `TrackingGateway.list_experiments()`, then `experiment_activity(id)` for every experiment (run
  count and newest run), then `experiments_table(...)`.
- **search_experiments() only**: the raw client lists experiments but gets no run counts.
- **search_experiments() + count runs by paging search_runs(max_results=N)**: the only way the
  raw client can count runs: download every run of every experiment, page by page.
- **First page of runs (Flightdeck)**: `gateway.search_runs([id], max_results=200)` and
  `runs_frame(...)` with the default columns; the baseline is
  `MlflowClient.search_runs([id], max_results=200, order_by=["attributes.start_time DESC"])`.
- **Experiments page via AppTest**: the whole `app.py` script on the Experiments page (server
  check, reads, table, rendering) through Streamlit's `AppTest`, with `st.cache_data.clear()`
  before each repetition so every read goes to the server.
- The raw client runs with MLflow's default HTTP timeout and retries; Flightdeck with its own
  settings (`load_settings` with only `MLFLOW_TRACKING_URI`). Every result is checked (run counts
  of {shape.runs:,}, 200 rows, every compared run in each history), so a fast wrong answer cannot
  be recorded.
"""


def _seeded_text(seeded_now: bool, seeded_at: str, seconds: float) -> str:
    if seeded_now:
        return f"seeded by this run in {seconds:.0f} s"
    return f"reused from the cache (seeded at {seeded_at} in {seconds:.0f} s)"
