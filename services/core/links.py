"""Query parameters ⇄ view state: what a person would share lives in the URL.

Each view is a frozen record with ``to_query`` and ``from_query``. Queries are plain mappings
of parameter name to a list of values (repeated keys), as ``st.query_params.get_all`` gives them.
Defaults are left out of the URL so links stay short.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, TypeVar

Query = Mapping[str, Sequence[str]]
View = TypeVar("View", "RunsView", "CompareView", "ModelView", "MonitoringView")

EXPERIMENTS_PAGE = "pages/experiments.py"
RUNS_PAGE = "pages/runs.py"
RUN_PAGE = "pages/run.py"
COMPARE_PAGE = "pages/compare.py"
MODELS_PAGE = "pages/models.py"
MODEL_PAGE = "pages/model.py"
PROMOTIONS_PAGE = "pages/promotions.py"
ADMIN_PAGE = "pages/admin.py"
MONITORING_PAGE = "pages/monitoring.py"
RETRAINING_PAGE = "pages/retraining.py"
# URL paths: each equals its page's file name (see cache._rerun_through_the_frame).
EXPERIMENTS_URL_PATH = "experiments"
RUNS_URL_PATH = "runs"
RUN_URL_PATH = "run"
COMPARE_URL_PATH = "compare"
MODELS_URL_PATH = "models"
MODEL_URL_PATH = "model"
PROMOTIONS_URL_PATH = "promotions"
ADMIN_URL_PATH = "admin"
MONITORING_URL_PATH = "monitoring"
RETRAINING_URL_PATH = "retraining"

OVERVIEW_PAGE = "pages/overview.py"
OVERVIEW_URL_PATH = "overview"
PRESENT_REFRESH_S = 60
"""Presentation mode refreshes itself this often by default (``?refresh=`` changes it)."""
PRESENT_MIN_REFRESH_S = 10

X_AXES = ("step", "wall", "relative")
"""History chart x-axes: step number, wall-clock time, or time since the run's first point."""


@dataclass(frozen=True, slots=True)
class RunsView:
    """The runs explorer: scope, filters, table layout and selection."""

    experiment_ids: tuple[str, ...] = ()
    """Experiments in scope; several give a cross-experiment view."""
    filter: str = ""
    """MLflow filter syntax, plus ``or`` between conditions."""
    statuses: tuple[str, ...] = ()
    """Run statuses to keep; empty keeps all."""
    started_from: date | None = None
    """Keep runs started on or after this day (UTC)."""
    started_to: date | None = None
    """Keep runs started on or before this day (UTC)."""
    tag: str = ""
    """A ``key=value`` tag the runs must carry."""
    parents_only: bool = False
    """Hide nested (child) runs."""
    sort: str = ""
    """The column to sort by; empty keeps MLflow's newest-first order."""
    ascending: bool = False
    """Sort direction."""
    columns: tuple[str, ...] = ()
    """Extra columns chosen in the picker (``metrics.x``, ``params.y``, ``tags.z``)."""
    group_by: str = ""
    """A ``params.x`` or ``tags.y`` column to group by; empty for no grouping."""
    group_metrics: tuple[str, ...] = ()
    """Metrics summarised per group (count, min, mean, max)."""
    selected: tuple[str, ...] = ()
    """Selected run ids."""

    def to_query(self) -> dict[str, list[str]]:
        return _to_query(self, RunsView())

    @classmethod
    def from_query(cls, query: Query) -> RunsView:
        return _from_query(cls, query)


@dataclass(frozen=True, slots=True)
class CompareView:
    """The compare view: which runs, and every chart choice."""

    run_ids: tuple[str, ...] = ()
    """The runs compared, 2 to 100."""
    metrics: tuple[str, ...] = ()
    """Metrics whose histories are charted."""
    x_axis: str = "step"
    """One of :data:`X_AXES`."""
    smoothing: float = 0.0
    """Exponential smoothing weight, 0 (none) to 0.99."""
    log_scale: bool = False
    """Log-scale y-axis on history charts."""
    all_params: bool = False
    """Show every param, not only those that differ."""
    higher_is_better: tuple[str, ...] = ()
    """Metrics overridden as higher-is-better."""
    lower_is_better: tuple[str, ...] = ()
    """Metrics overridden as lower-is-better."""
    parallel_metric: str = ""
    """The metric the parallel-coordinates chart ends on."""
    scatter_x: str = ""
    """Scatter x: a ``params.x`` or ``metrics.y`` column."""
    scatter_y: str = ""
    """Scatter y: a ``params.x`` or ``metrics.y`` column."""
    box_metric: str = ""
    """The metric of the box plot."""
    box_group: str = ""
    """The ``params.x`` column the box plot groups by."""
    across_runs: bool = False
    """Show the charts across runs (parallel coordinates, scatter, box plot)."""
    version_trend: bool = False
    """Show a metric's trend across a registered model's versions."""
    model: str = ""
    """A registered model whose metric trend across versions is shown."""
    trend_metric: str = ""
    """The metric of that trend."""

    def to_query(self) -> dict[str, list[str]]:
        return _to_query(self, CompareView())

    @classmethod
    def from_query(cls, query: Query) -> CompareView:
        return _from_query(cls, query)


@dataclass(frozen=True, slots=True)
class ModelView:
    """One registered model: the version in detail, the one it is compared with, the chart."""

    name: str = ""
    """The registered model's name."""
    version: str = ""
    """The version shown in detail and compared (B); empty for the newest."""
    compare: str = ""
    """The version it is compared with (A); empty for the champion or the previous version."""
    metric: str = ""
    """The metric charted across versions; empty for the model's primary metric."""
    all_params: bool = False
    """Show every param in the comparison, not only those that differ."""
    chart: bool = False
    """Draw the metric across versions (on request: the chart library is the page's heaviest
    download, and the versions come first)."""

    def to_query(self) -> dict[str, list[str]]:
        return _to_query(self, ModelView())

    @classmethod
    def from_query(cls, query: Query) -> ModelView:
        return _from_query(cls, query)


@dataclass(frozen=True, slots=True)
class MonitoringView:
    """A model's drift monitoring: which model and alias, the time range, one batch in detail."""

    model: str = ""
    """The registered model; empty for the first model with monitoring runs."""
    alias: str = ""
    """Only batches monitored through this alias; empty for every alias."""
    window_from: date | None = None
    """Keep batches whose window ends on or after this day (UTC)."""
    window_to: date | None = None
    """Keep batches whose window starts on or before this day (UTC)."""
    batch: str = ""
    """The monitoring run shown in detail; empty for the newest batch."""
    feature: str = ""
    """The column whose distribution is drawn; empty for the most drifted one."""
    ecdf: bool = False
    """Draw a numeric column as cumulative distributions instead of histograms."""

    def to_query(self) -> dict[str, list[str]]:
        return _to_query(self, MonitoringView())

    @classmethod
    def from_query(cls, query: Query) -> MonitoringView:
        return _from_query(cls, query)


def _to_query(view: Any, default: Any) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for spec in fields(view):
        value = getattr(view, spec.name)
        if value == getattr(default, spec.name):
            continue
        if isinstance(value, tuple):
            query[spec.name] = list(value)
        elif isinstance(value, bool):
            query[spec.name] = ["1"]
        elif isinstance(value, date):
            query[spec.name] = [value.isoformat()]
        else:
            query[spec.name] = [str(value)]
    return query


def _from_query(cls: type[View], query: Query) -> View:
    """Build a view from a URL, ignoring what cannot be parsed: a bad link still opens."""
    default = cls()
    values: dict[str, Any] = {}
    for spec in fields(cls):
        raw = [v for v in query.get(spec.name, ()) if v != ""]
        if not raw:
            continue
        current = getattr(default, spec.name)
        try:
            if isinstance(current, tuple):
                values[spec.name] = tuple(dict.fromkeys(raw))
            elif isinstance(current, bool):
                values[spec.name] = raw[-1] in ("1", "true", "True")
            elif isinstance(current, float):
                values[spec.name] = min(max(float(raw[-1]), 0.0), 0.99)
            elif spec.type == "date | None":
                values[spec.name] = date.fromisoformat(raw[-1])
            else:
                values[spec.name] = raw[-1]
        except ValueError:
            continue
    return cls(**values)


def present_settings(query: Query) -> tuple[bool, int, bool]:
    """Presentation mode from the URL: (on, refresh seconds, rotate through the cards).

    ``?present=1&refresh=30&rotate=1``; a refresh that is not a whole number, or below
    :data:`PRESENT_MIN_REFRESH_S`, falls back to a safe value.
    """
    first = {key: (values[0] if values else "") for key, values in query.items()}
    try:
        refresh = max(PRESENT_MIN_REFRESH_S, int(first.get("refresh") or PRESENT_REFRESH_S))
    except ValueError:
        refresh = PRESENT_REFRESH_S
    return first.get("present") == "1", refresh, first.get("rotate") == "1"
