"""The compare view's logic: runs side by side, best values, and data for charts across runs.

Pure functions from Flightdeck's records to tables and choices the Compare page renders. Reads
are passed in as callables (``fetch_run``), so a page hands in the cached reads and a test
hands in a dictionary lookup.

Whether a higher or a lower value of a metric is better is inferred from its name (see
:data:`LOWER_IS_BETTER_HINTS`) and can be overridden per metric in the URL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import pandas as pd

from services.core.errors import NotFound
from services.core.links import RUN_URL_PATH, CompareView
from services.core.records import Run
from services.experiments.history import is_finite_value

MIN_RUNS = 2
"""Fewer runs than this leave nothing to compare."""
MAX_RUNS = 100
"""The most runs one view compares: one bulk history request's worth."""

LOWER_IS_BETTER_HINTS = ("loss", "error", "rmse", "mae", "mse", "perplexity")
"""A metric whose name contains one of these is better when lower; any other when higher."""

RUN_COLUMN = "Run"
RUN_ID_COLUMN = "Run ID"
PARAM_COLUMN = "Param"
METRIC_COLUMN = "Metric"
BETTER_COLUMN = "Better"
BEST_COLUMN = "Best run"
FIXED_COLUMNS = frozenset(
    {RUN_COLUMN, RUN_ID_COLUMN, PARAM_COLUMN, METRIC_COLUMN, BETTER_COLUMN, BEST_COLUMN}
)
"""Column names run labels must never take, so a run called "Best run" cannot shadow one."""

LINK_COLUMN = "Details"
"""The run detail page's ``url_path`` in ``app.py``."""


# -- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoadedRuns:
    """The runs a compare link names, split into those found and those that are not."""

    runs: tuple[Run, ...]
    """Active runs that were found, in the link's order."""
    missing: tuple[str, ...]
    """Ids in the link that name no run, or a deleted one."""
    truncated: int = 0
    """How many ids beyond :data:`MAX_RUNS` were ignored."""


def load_runs(
    run_ids: Sequence[str],
    fetch_run: Callable[[str], Run],
    on_progress: Callable[[int, int], None] | None = None,
) -> LoadedRuns:
    """Read each run a compare link names; unknown and deleted ones are reported, not raised.

    Args:
        run_ids: Ids from the link, possibly repeated; only the first :data:`MAX_RUNS` distinct
            ids are read.
        fetch_run: Reads one run and raises ``NotFound`` for an unknown id.
        on_progress: Called with (runs read so far, runs to read) after each read.

    Raises:
        FlightdeckError: Any failure other than a missing run, e.g. the server is down.
    """
    distinct = list(dict.fromkeys(run_id.strip() for run_id in run_ids if run_id.strip()))
    wanted = distinct[:MAX_RUNS]
    found: list[Run] = []
    missing: list[str] = []
    for done, run_id in enumerate(wanted, start=1):
        try:
            run = fetch_run(run_id)
        except NotFound:
            missing.append(run_id)
        else:
            if run.deleted:
                missing.append(run_id)
            else:
                found.append(run)
        if on_progress is not None:
            on_progress(done, len(wanted))
    return LoadedRuns(tuple(found), tuple(missing), len(distinct) - len(wanted))


def run_labels(runs: Sequence[Run]) -> dict[str, str]:
    """A distinct, readable label per run id: its name, with a short id where names repeat.

    Unnamed runs use their short id. Labels never equal one of :data:`FIXED_COLUMNS`, so they
    can be column names next to those.
    """
    names = [run.name.strip() or run.run_id[:8] for run in runs]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    labels: dict[str, str] = {}
    taken: set[str] = set(FIXED_COLUMNS)
    for run, name in zip(runs, names, strict=True):
        label = name if counts[name] == 1 and name not in FIXED_COLUMNS else _with_id(name, run)
        while label in taken:
            label = f"{label}′"
        taken.add(label)
        labels[run.run_id] = label
    return labels


def experiment_ids(runs: Iterable[Run]) -> list[str]:
    """The distinct experiments the runs belong to, in first-seen order."""
    return list(dict.fromkeys(run.experiment_id for run in runs))


def run_page_link(run_id: str) -> str:
    """A link to the run's detail page, relative to the Compare page (both sit at the root)."""
    return f"{RUN_URL_PATH}?{urlencode({'run_id': run_id})}"


def runs_overview(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per compared run: its label, a link to its page, status, experiment and timing."""
    labels = run_labels(runs)
    return pd.DataFrame(
        [
            {
                RUN_COLUMN: labels[run.run_id],
                LINK_COLUMN: run_page_link(run.run_id),
                "Status": run.status,
                "Experiment ID": run.experiment_id,
                "Started": run.start_time,
                "Duration (s)": run.duration.total_seconds() if run.duration else None,
                RUN_ID_COLUMN: run.run_id,
            }
            for run in runs
        ],
        columns=[
            RUN_COLUMN,
            LINK_COLUMN,
            "Status",
            "Experiment ID",
            "Started",
            "Duration (s)",
            RUN_ID_COLUMN,
        ],
    )


def _with_id(name: str, run: Run) -> str:
    return name if name == run.run_id[:8] else f"{name} ({run.run_id[:8]})"


# -- directions -------------------------------------------------------------------------------


def inferred_lower_is_better(metric: str) -> bool:
    """True when the metric's name says lower is better (loss, error, rmse, mae, mse, …)."""
    name = metric.casefold()
    return any(hint in name for hint in LOWER_IS_BETTER_HINTS)


def lower_is_better(metric: str, view: CompareView) -> bool:
    """The metric's direction: the view's override when it has one, else inferred from the name."""
    if metric in view.lower_is_better:
        return True
    if metric in view.higher_is_better:
        return False
    return inferred_lower_is_better(metric)


def lower_is_better_metrics(metrics: Iterable[str], view: CompareView) -> list[str]:
    """The metrics, among ``metrics``, that are better when lower in this view."""
    return [metric for metric in metrics if lower_is_better(metric, view)]


def with_directions(
    view: CompareView, metrics: Iterable[str], lower: Collection[str]
) -> CompareView:
    """The view with direction overrides that make exactly ``lower`` the lower-is-better metrics.

    Only metrics whose chosen direction differs from the inferred one are stored, so the URL
    stays short; overrides for metrics not in ``metrics`` are kept.
    """
    shown = set(metrics)
    higher_overrides = [m for m in view.higher_is_better if m not in shown]
    lower_overrides = [m for m in view.lower_is_better if m not in shown]
    for metric in sorted(shown):
        chosen_lower = metric in lower
        if chosen_lower != inferred_lower_is_better(metric):
            (lower_overrides if chosen_lower else higher_overrides).append(metric)
    return replace(
        view, higher_is_better=tuple(higher_overrides), lower_is_better=tuple(lower_overrides)
    )


# -- tables -----------------------------------------------------------------------------------


def metric_names(runs: Iterable[Run]) -> list[str]:
    """Every metric any of the runs logged, sorted."""
    return sorted({key for run in runs for key in run.metrics})


def param_names(runs: Iterable[Run]) -> list[str]:
    """Every param any of the runs logged, sorted."""
    return sorted({key for run in runs for key in run.params})


def differing_params(runs: Sequence[Run]) -> list[str]:
    """Params whose value is not the same in every run; a param missing from a run differs."""
    return [key for key in param_names(runs) if len({run.params.get(key) for run in runs}) > 1]


def params_table(runs: Sequence[Run], only_differences: bool = True) -> pd.DataFrame:
    """Params side by side: one row per param, one column per run (see :func:`run_labels`).

    A param a run did not log is empty (None) in that run's column.

    Args:
        runs: The compared runs.
        only_differences: Keep only the params whose value differs between runs.
    """
    labels = run_labels(runs)
    keys = differing_params(runs) if only_differences else param_names(runs)
    rows = [
        {PARAM_COLUMN: key, **{labels[run.run_id]: run.params.get(key) for run in runs}}
        for key in keys
    ]
    return pd.DataFrame(rows, columns=[PARAM_COLUMN, *labels.values()])


@dataclass(frozen=True, slots=True)
class MetricsComparison:
    """Metrics side by side, with the best run of each metric."""

    table: pd.DataFrame
    """One row per metric: the metric, one column per run, "Better" and "Best run"."""
    best: Mapping[str, tuple[str, ...]]
    """Each metric's best run ids (several on a tie; none when no run has a finite value)."""


def best_runs(runs: Sequence[Run], metric: str, lower: bool) -> tuple[str, ...]:
    """The runs with the best finite value of ``metric``; NaN, ±inf and missing never win."""
    values = {
        run.run_id: run.metrics[metric]
        for run in runs
        if metric in run.metrics and is_finite_value(run.metrics[metric])
    }
    if not values:
        return ()
    best = min(values.values()) if lower else max(values.values())
    return tuple(run_id for run_id, value in values.items() if value == best)


def compare_metrics(runs: Sequence[Run], view: CompareView) -> MetricsComparison:
    """Metrics side by side with the best run of each marked, in the view's directions.

    Missing metrics are empty (NaN); NaN and ±inf values are shown as logged but never best.
    """
    labels = run_labels(runs)
    rows: list[dict[str, object]] = []
    best: dict[str, tuple[str, ...]] = {}
    for metric in metric_names(runs):
        lower = lower_is_better(metric, view)
        best[metric] = best_runs(runs, metric, lower)
        rows.append(
            {
                METRIC_COLUMN: metric,
                BETTER_COLUMN: "lower" if lower else "higher",
                BEST_COLUMN: best_label(best[metric], labels),
                **{labels[run.run_id]: run.metrics.get(metric, math.nan) for run in runs},
            }
        )
    columns = [METRIC_COLUMN, BETTER_COLUMN, BEST_COLUMN, *labels.values()]
    return MetricsComparison(pd.DataFrame(rows, columns=columns), best)


def best_label(best: Sequence[str], labels: Mapping[str, str]) -> str:
    """The "Best run" cell: the run's label, or how many runs tie (their cells are highlighted)."""
    if len(best) == 1:
        return labels[best[0]]
    return f"{len(best)} runs tie" if best else ""


def best_cell_mask(comparison: MetricsComparison, runs: Sequence[Run]) -> pd.DataFrame:
    """True for each cell holding a best value, shaped like ``comparison.table``."""
    labels = run_labels(runs)
    table = comparison.table
    mask = pd.DataFrame(False, index=table.index, columns=table.columns)
    for row, metric in zip(table.index, table[METRIC_COLUMN], strict=True):
        for run_id in comparison.best.get(str(metric), ()):
            mask.loc[row, labels[run_id]] = True
    return mask


def suggested_history_metrics(runs: Sequence[Run], limit: int = 2) -> list[str]:
    """Metrics worth charting first: those every run logged, losses first, then by name."""
    shared = [m for m in metric_names(runs) if all(m in run.metrics for run in runs)]
    return sorted(shared, key=lambda m: (not inferred_lower_is_better(m), m))[:limit]


def keep_implicit(stored: str, chosen: str, effective: str) -> str:
    """The value to store for a picker: unchanged when the person kept the shown default.

    A blank URL value shows a computed default; storing that default would only lengthen the
    link, so the stored value changes only when the choice differs from what was shown.
    """
    return stored if chosen == effective else chosen
