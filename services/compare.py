"""The compare view's logic: runs side by side, best values, and data for charts across runs.

Pure functions from Flightdeck's records to tables and choices the Compare page renders. Reads
are passed in as callables (``fetch_run``), so a page hands in the cached reads and a test
hands in a dictionary lookup.

Whether a higher or a lower value of a metric is better is inferred from its name (see
:data:`LOWER_IS_BETTER_HINTS`) and can be overridden per metric in the URL.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

import pandas as pd

from services.errors import NotFound
from services.history import is_finite_value
from services.links import RUN_URL_PATH, CompareView
from services.records import ModelVersionSummary, Run

MIN_RUNS = 2
"""Fewer runs than this leave nothing to compare."""
MAX_RUNS = 100
"""The most runs one view compares: one bulk history request's worth."""
MAX_MODEL_LOOKUPS = 200
"""At most this many version source runs are read to find models related to the runs."""

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

PARAM_PREFIX = "params."
METRIC_PREFIX = "metrics."


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


# -- data for charts across runs --------------------------------------------------------------


def chart_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run with ``params.<key>`` and ``metrics.<key>`` columns, for charts.

    A param column is numeric (float) when every logged value parses as a finite number, and
    text otherwise. Missing values are NaN in numeric columns and None in text ones. Metric
    columns are floats and keep NaN and ±inf as logged; charts drop what they cannot draw.
    """
    labels = run_labels(runs)
    frame = pd.DataFrame(
        {
            RUN_COLUMN: [labels[run.run_id] for run in runs],
            RUN_ID_COLUMN: [run.run_id for run in runs],
        }
    )
    for key in param_names(runs):
        frame[PARAM_PREFIX + key] = as_numbers_if_possible([run.params.get(key) for run in runs])
    for key in metric_names(runs):
        frame[METRIC_PREFIX + key] = pd.Series(
            [run.metrics.get(key, math.nan) for run in runs], dtype="float64"
        )
    return frame


def as_numbers_if_possible(values: Sequence[str | None]) -> pd.Series:
    """Floats when every present value is a finite number, else the values as text."""
    numbers: list[float] = []
    for value in values:
        if value is None:
            numbers.append(math.nan)
            continue
        try:
            number = float(value)
        except ValueError:
            return pd.Series(list(values), dtype="object")
        if not is_finite_value(number):
            return pd.Series(list(values), dtype="object")
        numbers.append(number)
    return pd.Series(numbers, dtype="float64")


def is_numeric_column(frame: pd.DataFrame, column: str) -> bool:
    """True when a chart frame's column holds numbers."""
    return bool(pd.api.types.is_numeric_dtype(frame[column]))


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The chart frame's ``params.*`` columns."""
    return [c for c in frame.columns if str(c).startswith(PARAM_PREFIX)]


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The chart frame's ``metrics.*`` columns."""
    return [c for c in frame.columns if str(c).startswith(METRIC_PREFIX)]


def varying_columns(frame: pd.DataFrame, columns: Iterable[str]) -> list[str]:
    """Those of ``columns`` with more than one distinct value (missing counts as a value)."""
    return [c for c in columns if frame[c].astype("string").fillna("").nunique() > 1]


@dataclass(frozen=True, slots=True)
class ChartChoices:
    """What the charts across runs show: the view's choices where valid, else defaults."""

    parallel_metric: str
    """The ``metrics.*`` column the parallel-coordinates chart ends on; empty without metrics."""
    parallel_params: tuple[str, ...]
    """The ``params.*`` columns it runs through: those that vary between runs."""
    scatter_x: str
    """Scatter x column; empty when the frame has no params or metrics."""
    scatter_y: str
    """Scatter y column."""
    box_metric: str
    """The ``metrics.*`` column of the box plot."""
    box_group: str
    """The ``params.*`` column it groups by; empty without params."""


def chart_choices(view: CompareView, frame: pd.DataFrame) -> ChartChoices:
    """Resolve the view's chart pickers against the columns the runs have.

    A choice that names a column the runs lack (a stale or edited link) falls back to a
    default: the first varying param, and the first metric in the view's history metrics or
    else alphabetically.
    """
    params = param_columns(frame)
    metrics = metric_columns(frame)
    varying = varying_columns(frame, params)
    preferred = [METRIC_PREFIX + m for m in view.metrics if METRIC_PREFIX + m in metrics]
    first_metric = (preferred or metrics or [""])[0]
    first_param = (varying or params or [""])[0]
    everything = params + metrics

    def pick(chosen: str, options: Sequence[str], default: str) -> str:
        return chosen if chosen in options else default

    return ChartChoices(
        parallel_metric=pick(METRIC_PREFIX + view.parallel_metric, metrics, first_metric),
        parallel_params=tuple(varying),
        scatter_x=pick(view.scatter_x, everything, first_param or first_metric),
        scatter_y=pick(view.scatter_y, everything, first_metric),
        box_metric=pick(METRIC_PREFIX + view.box_metric, metrics, first_metric),
        box_group=pick(view.box_group, params, first_param),
    )


def bare_name(column: str) -> str:
    """``metrics.x`` or ``params.x`` without its prefix."""
    for prefix in (METRIC_PREFIX, PARAM_PREFIX):
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column


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


# -- metric trend across model versions ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VersionMetric:
    """One model version's value of a metric, from the run it was registered from."""

    version: int
    """The version number."""
    run_id: str
    """The source run; empty when the version has none."""
    value: float | None
    """The source run's latest value; None when the run or the metric is missing."""
    aliases: tuple[str, ...]
    """Aliases pointing at this version, e.g. ("champion",)."""


def models_for_experiments(
    versions: Sequence[ModelVersionSummary],
    experiment_ids: Collection[str],
    fetch_run: Callable[[str], Run],
) -> list[str]:
    """Registered models with a version trained in one of the experiments: the model with the
    most such versions first (the experiment's main model, not a copy of one), then by name.

    Reads the source run of at most :data:`MAX_MODEL_LOOKUPS` versions (newest first); source
    runs that no longer exist are skipped.

    Args:
        versions: Model versions, e.g. every version in the registry.
        experiment_ids: The compared runs' experiments.
        fetch_run: Reads one run; raises ``NotFound`` for an unknown id.
    """
    related: Counter[str] = Counter()
    newest_first = sorted(
        versions, key=lambda v: (v.created_at is None, v.created_at), reverse=True
    )
    checked: dict[str, str | None] = {}
    for version in newest_first:
        if not version.run_id:
            continue
        if version.run_id not in checked:
            if len(checked) >= MAX_MODEL_LOOKUPS:
                break
            checked[version.run_id] = _experiment_of(version.run_id, fetch_run)
        if checked[version.run_id] in experiment_ids:
            related[version.name] += 1
    return sorted(related, key=lambda name: (-related[name], name))


def _experiment_of(run_id: str, fetch_run: Callable[[str], Run]) -> str | None:
    try:
        return fetch_run(run_id).experiment_id
    except NotFound:
        return None


def trend_metric_default(source_runs: Sequence[Run], wanted: Sequence[str]) -> str:
    """The metric a version trend starts on: the first of ``wanted`` every source run logged.

    Falls back to the first metric every source run logged, then to any metric, then "".
    """
    available = metric_names(source_runs)
    shared = [m for m in available if all(m in run.metrics for run in source_runs)]
    for metric in (*wanted, *shared, *available):
        if metric in (shared or available):
            return metric
    return ""


def version_source_run_ids(versions: Iterable[ModelVersionSummary]) -> list[str]:
    """The distinct source runs of the versions, in version order."""
    ordered = sorted(versions, key=lambda v: v.version)
    return list(dict.fromkeys(v.run_id for v in ordered if v.run_id))


def version_trend(
    versions: Iterable[ModelVersionSummary],
    source_runs: Iterable[Run],
    metric: str,
    aliases: Mapping[str, int],
) -> list[VersionMetric]:
    """A metric across a model's versions, oldest first, with the current alias holders.

    Args:
        versions: The model's versions.
        source_runs: The runs they were registered from (missing ones give no value).
        metric: The metric to read from each source run.
        aliases: Alias name → version number, as the registry holds them now.
    """
    runs = {run.run_id: run for run in source_runs}
    holders: dict[int, list[str]] = {}
    for alias, number in sorted(aliases.items()):
        holders.setdefault(number, []).append(alias)
    trend: list[VersionMetric] = []
    for version in sorted(versions, key=lambda v: v.version):
        run = runs.get(version.run_id)
        value = run.metrics.get(metric) if run is not None else None
        trend.append(
            VersionMetric(
                version.version, version.run_id, value, tuple(holders.get(version.version, ()))
            )
        )
    return trend
