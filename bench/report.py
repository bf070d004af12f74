"""Render the benchmark's figures as Markdown: ``bench/results.md`` and the tables on stdout."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version

from bench.store import SEEDING_PATH_NOTE, SeededStore
from bench.timing import REPETITIONS, Timing


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
class BenchResults:
    """Everything one ``make bench`` measured."""

    store: SeededStore
    server_version: str
    load_average: tuple[float, float, float]
    """The machine's 1, 5 and 15 minute load when timing began (it is shared)."""
    timings: tuple[Timing, ...]
    comparisons: tuple[Comparison, ...]
    recorded_at: datetime


def timings_table(timings: tuple[Timing, ...]) -> str:
    """Every measurement with its median, min and max."""
    rows = [
        "| Measurement | Median (s) | Min (s) | Max (s) |",
        "|---|---:|---:|---:|",
    ]
    rows += [f"| {t.label} | {t.median:.3f} | {t.minimum:.3f} | {t.maximum:.3f} |" for t in timings]
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
    seeded = (
        f"seeded by this run in {store.seed_seconds:.0f} s"
        if store.seeded_now
        else f"reused from the cache; seeded at {store.seeded_at} in {store.seed_seconds:.0f} s"
    )
    load = ", ".join(f"{value:.2f}" for value in results.load_average)
    return f"""# Benchmark results

Written by `make bench` (`python -m bench.run`) on {results.recorded_at:%Y-%m-%d %H:%M} UTC.
The speed targets come with later issues: these figures are the recorded starting point.

## Machine

- CPUs (`nproc`): {os.cpu_count()}; load average when timing began: {load} (a shared machine)
- {platform.platform()}
- Python {platform.python_version()}, MLflow {version("mlflow")} (the server reports \
{results.server_version}), Streamlit {version("streamlit")}, pandas {version("pandas")}
- Server: `mlflow server` on SQLite with 1 worker on loopback, started by
  `services.processes.start_mlflow_server`

## Store

- Experiment `{shape.experiment_name}` (id {store.experiment_id}): {shape.runs:,} finished runs, \
each with {shape.params_per_run} params, {shape.metrics_per_run} metrics (one value each) and \
{shape.tags_per_run} tags, plus the `mlflow.runName` tag MLflow adds. MLflow's empty `Default` \
experiment is the only other one.
- Values are deterministic (seed {shape.random_seed}); run ids are MLflow's random UUIDs.
- In `bench/.store/`, {seeded}.
- {SEEDING_PATH_NOTE}

## Timings

Wall-clock seconds over {REPETITIONS} timed repetitions in one process, client and server on the
same machine. Each measurement first makes one untimed warm-up call, as a running dashboard
would have, except the full downloads of every run, which take long enough not to need one.
The machine may be shared (see the load average), so figures move between runs: compare medians,
and rerun before reading much into a small change.

{timings_table(results.timings)}

## Flightdeck against the raw MLflow client

{comparisons_table(results.comparisons)}

## What is measured

- **Experiments page fetch (Flightdeck)**: what the Experiments page reads with cold caches:
  `TrackingGateway.list_experiments()`, then `experiment_activity(id)` for every experiment (run
  count and newest run), then `experiments_table(...)`.
- **search_experiments() only**: the raw client lists experiments but gets no run counts.
- **search_experiments() + count runs by paging search_runs(max_results=N)**: the only way the
  raw client can count runs: download every run, page by page.
- **First page of runs (Flightdeck)**: `gateway.search_runs([id], max_results=200)` and
  `runs_table(page.runs)`; the baseline is `MlflowClient.search_runs([id], max_results=200,
  order_by=["attributes.start_time DESC"])`.
- **Experiments page via AppTest**: the whole `app.py` script on the Experiments page (server
  check, reads, table, rendering) through Streamlit's `AppTest`, with `st.cache_data.clear()`
  before each repetition so every read goes to the server.
- The raw client runs with MLflow's default HTTP timeout and retries; Flightdeck with its own
  settings (`load_settings` with only `MLFLOW_TRACKING_URI`). Every result is checked (run counts
  of {shape.runs:,}, 200 rows), so a fast wrong answer cannot be recorded.
"""
