"""The runs explorer's logic: filters with OR, quick filters, paging, columns, groups.

MLflow's filter syntax joins conditions with AND only. Flightdeck splits a filter on top-level
``or`` into branches, runs each branch as its own MLflow query, and merges the results without
duplicates, in the order asked for.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pandas as pd

from services.core.errors import FlightdeckError
from services.core.links import RunsView
from services.core.records import Experiment, Run, RunPage

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
LOAD_ALL_PAGE_SIZE = 1000
"""Runs per request when loading everything; MLflow's server default page size."""
DEFAULT_METRIC_COLUMNS = 6
DEFAULT_PARAM_COLUMNS = 4
BASE_COLUMNS = ("Run", "Run ID", "Experiment", "Status", "Started", "Duration (s)", "User")

SearchPage = Callable[[Sequence[str], str, Sequence[str], int, str | None], RunPage]
"""``(experiment_ids, filter, order_by, max_results, page_token) -> RunPage``: the gateway call."""

_OR = re.compile(r"\s+or\s+", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")
_RUN_ID = re.compile(r"\b[0-9a-f]{32}\b")


@dataclass(frozen=True, slots=True)
class RunSearch:
    """The MLflow queries one explorer view needs."""

    experiment_ids: tuple[str, ...]
    """Experiments in scope."""
    filters: tuple[str, ...]
    """One MLflow filter per OR branch, with the quick filters AND-ed into each."""
    order_by: tuple[str, ...]
    """MLflow ``order_by`` clauses; the same for every branch so merged pages stay sorted."""


# -- filters ---------------------------------------------------------------------------------------


def split_or(filter_text: str) -> list[str]:
    """Split a filter on top-level ``or``; quoted text is never split. Blank gives ``[""]``.

    AND binds tighter than OR, as in SQL: ``a and b or c`` is ``(a and b)`` or ``c``.
    """
    masked = _QUOTED.sub(lambda m: "\0" * len(m.group()), filter_text)
    branches, start = [], 0
    for match in _OR.finditer(masked):
        branches.append(filter_text[start : match.start()].strip())
        start = match.end()
    branches.append(filter_text[start:].strip())
    if len(branches) > 1 and not all(branches):
        raise FlightdeckError("“or” needs a condition on each side, e.g. a = 1 or b = 2.")
    return branches


def quick_filter_clauses(view: RunsView) -> list[str]:
    """The quick filters other than status (dates, tag, parents only) as MLflow conditions.

    Statuses are not here: MLflow's ``IN`` works only on run ids, so each status becomes a
    branch of its own in :func:`build_search`.
    """
    clauses = []
    if view.started_from:
        clauses.append(f"attributes.start_time >= {_day_start_ms(view.started_from)}")
    if view.started_to:
        next_day = view.started_to + timedelta(days=1)
        clauses.append(f"attributes.start_time < {_day_start_ms(next_day)}")
    if view.tag:
        key, _, value = view.tag.partition("=")
        if not key.strip():
            raise FlightdeckError("The tag filter needs the form key=value, e.g. team=health.")
        clauses.append(f"tags.`{key.strip()}` = {_quote(value.strip())}")
    if view.parents_only:
        clauses.append("tags.`mlflow.parentRunId` IS NULL")
    return clauses


def order_by_clause(column: str, ascending: bool) -> tuple[str, ...]:
    """MLflow ``order_by`` for a table column; newest first when there is no server-side key."""
    direction = "ASC" if ascending else "DESC"
    attribute = {
        "Run": "attributes.run_name",
        "Started": "attributes.start_time",
        "Status": "attributes.status",
        "Duration (s)": "attributes.end_time",
    }
    if column in attribute:
        return (f"{attribute[column]} {direction}",)
    kind, _, key = column.partition(".")
    if kind in ("metrics", "params", "tags") and key:
        return (f"{kind}.`{key}` {direction}", "attributes.start_time DESC")
    return ("attributes.start_time DESC",)


def build_search(view: RunsView) -> RunSearch:
    """The queries for a view: one per OR branch and chosen status, each with the quick filters.

    Raises:
        FlightdeckError: The filter text cannot be split into branches.
    """
    quick = quick_filter_clauses(view)
    statuses = [f"attributes.status = {_quote(s)}" for s in view.statuses] or [""]
    filters = tuple(
        " and ".join(c for c in (branch, status, *quick) if c)
        for branch in split_or(view.filter)
        for status in statuses
    )
    return RunSearch(
        view.experiment_ids,
        tuple(dict.fromkeys(filters)),
        order_by_clause(view.sort, view.ascending),
    )


# -- fetching --------------------------------------------------------------------------------------


def first_page(search: RunSearch, fetch: SearchPage, size: int) -> tuple[list[Run], bool]:
    """The first ``size`` runs across all branches, merged; and whether more exist."""
    pages = [fetch(search.experiment_ids, f, search.order_by, size, None) for f in search.filters]
    merged = merge_runs([p.runs for p in pages], search.order_by)
    more = len(merged) > size or any(p.next_page_token for p in pages)
    return merged[:size], more


def merge_runs(branches: Sequence[Sequence[Run]], order_by: Sequence[str]) -> list[Run]:
    """Runs from several branches, without duplicates, in the order ``order_by`` asks for."""
    unique: dict[str, Run] = {}
    for runs in branches:
        for run in runs:
            unique.setdefault(run.run_id, run)
    merged = list(unique.values())
    return merged if len(branches) <= 1 else sort_runs(merged, order_by)


def sort_runs(runs: list[Run], order_by: Sequence[str]) -> list[Run]:
    """Sort records the way MLflow would for the first ``order_by`` clause (missing last)."""
    clause = order_by[0] if order_by else "attributes.start_time DESC"
    key_text, _, direction = clause.rpartition(" ")
    descending = direction.upper() == "DESC"
    kind, _, key = key_text.partition(".")
    key = key.strip("`")

    def value(run: Run) -> Any:
        if kind == "metrics":
            return run.metrics.get(key)
        if kind == "params":
            return _number_or_text(run.params.get(key))
        if kind == "tags":
            return run.tags.get(key)
        return {
            "run_name": run.name,
            "start_time": run.start_time,
            "status": run.status,
            "end_time": run.end_time,
        }.get(key)

    present = [r for r in runs if _sortable(value(r))]
    missing = [r for r in runs if not _sortable(value(r))]
    try:
        present.sort(key=value, reverse=descending)
    except TypeError:  # mixed numbers and text in one param: compare as text
        present.sort(key=lambda r: str(value(r)), reverse=descending)
    return present + missing


@dataclass
class RunLoader:
    """Loads every run of a search in a background thread; the page polls its progress.

    Safe to read from other threads: ``runs`` only grows, and ``done``/``error`` are set last.
    """

    search: RunSearch
    fetch: SearchPage
    runs: list[Run] = field(default_factory=list)
    done: bool = False
    error: FlightdeckError | None = None
    _thread: threading.Thread | None = None

    def start(self) -> RunLoader:
        """Start loading unless it already started; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._load, name="flightdeck-load-all", daemon=True
            )
            self._thread.start()
        return self

    def _load(self) -> None:
        try:
            seen: set[str] = set()
            for filter_string in self.search.filters:
                token: str | None = None
                while True:
                    page = self.fetch(
                        self.search.experiment_ids,
                        filter_string,
                        self.search.order_by,
                        LOAD_ALL_PAGE_SIZE,
                        token,
                    )
                    fresh = [r for r in page.runs if r.run_id not in seen]
                    seen.update(r.run_id for r in fresh)
                    self.runs.extend(fresh)
                    token = page.next_page_token
                    if not token:
                        break
            if len(self.search.filters) > 1:
                self.runs[:] = sort_runs(self.runs, self.search.order_by)
        except FlightdeckError as exc:
            self.error = exc
        finally:
            self.done = True


# -- table -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnCatalog:
    """Every column the picker can offer, by kind, from the runs at hand."""

    metrics: tuple[str, ...]
    params: tuple[str, ...]
    tags: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.metrics + self.params + self.tags


def column_catalog(runs: Iterable[Run]) -> ColumnCatalog:
    """The ``metrics.``, ``params.`` and ``tags.`` columns present in these runs, sorted."""
    metrics: set[str] = set()
    params: set[str] = set()
    tags: set[str] = set()
    for run in runs:
        metrics.update(run.metrics)
        params.update(run.params)
        tags.update(k for k in run.tags if not k.startswith("mlflow."))
    return ColumnCatalog(
        tuple(f"metrics.{k}" for k in sorted(metrics)),
        tuple(f"params.{k}" for k in sorted(params)),
        tuple(f"tags.{k}" for k in sorted(tags)),
    )


def default_columns(catalog: ColumnCatalog) -> tuple[str, ...]:
    """A useful starting set: evaluation metrics first, then a few params."""
    metrics = sorted(catalog.metrics, key=lambda c: (not c.startswith("metrics.eval_"), c))
    return tuple(metrics[:DEFAULT_METRIC_COLUMNS]) + catalog.params[:DEFAULT_PARAM_COLUMNS]


def runs_frame(
    runs: Sequence[Run], columns: Sequence[str], experiment_names: Mapping[str, str]
) -> pd.DataFrame:
    """The table: base columns plus only the chosen ``metrics.``/``params.``/``tags.`` columns.

    The run id is also the index, so a selected row maps back to its run.
    """
    rows = []
    for run in runs:
        row: dict[str, object] = {
            "Run": run.name,
            "Run ID": run.run_id,
            "Experiment": experiment_names.get(run.experiment_id, run.experiment_id),
            "Status": run.status,
            "Started": run.start_time,
            "Duration (s)": run.duration.total_seconds() if run.duration else None,
            "User": run.user,
        }
        for column in columns:
            row[column] = cell_value(run, column)
        rows.append(row)
    frame = pd.DataFrame(
        rows,
        columns=[*BASE_COLUMNS, *columns],
        index=pd.Index([r.run_id for r in runs], name="Run ID"),
    )
    return frame


def cell_value(run: Run, column: str) -> object:
    """A run's value for a ``metrics.``/``params.``/``tags.`` column; None when absent."""
    kind, _, key = column.partition(".")
    if kind == "metrics":
        return run.metrics.get(key)
    if kind == "params":
        return run.params.get(key)
    if kind == "tags":
        return run.tags.get(key)
    return None


def sort_frame(frame: pd.DataFrame, column: str, ascending: bool) -> pd.DataFrame:
    """Sort the table by a column, numbers as numbers, missing values last."""
    if not column or column not in frame.columns:
        return frame
    numeric = pd.to_numeric(frame[column], errors="coerce")
    key = numeric if numeric.notna().sum() >= frame[column].notna().sum() else frame[column]
    order = key.sort_values(ascending=ascending, na_position="last", kind="stable").index
    return frame.loc[order]


def group_summary(runs: Sequence[Run], group_by: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Count, min, mean and max of each metric per value of a param or tag.

    Runs without the param or tag form the group "(none)". NaN and inf values are ignored.
    """
    data: dict[str, list[object]] = {
        group_by: [str(cell_value(r, group_by) or "(none)") for r in runs]
    }
    for metric in metrics:
        data[metric] = [_finite(cell_value(r, metric)) for r in runs]
    frame = pd.DataFrame(data)
    counts = frame.groupby(group_by, sort=True).size().rename("Runs")
    if not metrics:
        return counts.reset_index()
    stats = frame.groupby(group_by, sort=True)[list(metrics)].agg(["min", "mean", "max"])
    stats.columns = [f"{metric} ({stat})" for metric, stat in stats.columns]
    return pd.concat([counts, stats], axis=1).reset_index()


def parse_run_ids(text: str) -> list[str]:
    """Run ids (32 hex digits) found in pasted text, in order, without duplicates."""
    return list(dict.fromkeys(_RUN_ID.findall(text.lower())))


def experiment_names(experiments: Iterable[Experiment]) -> dict[str, str]:
    """Experiment id → name."""
    return {e.experiment_id: e.name for e in experiments}


# -- helpers ---------------------------------------------------------------------------------------


def _quote(value: str) -> str:
    return "'" + value.replace("'", "\\'") + "'"


def _day_start_ms(day: Any) -> int:
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp() * 1000)


def _number_or_text(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def _sortable(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _finite(value: object) -> float | None:
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None
