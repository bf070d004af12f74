"""One run in detail: metric ranges, params, tags, lineage, datasets and registered versions.

Pure functions from Flightdeck's records to what the Run page shows. Reads come in as
arguments (records, or a function that fetches one metric's history), so the page passes cached
reads and tests pass plain data. Untrusted text (names, params, tags, descriptions) stays plain
text in the tables built here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import pandas as pd

from services.core.links import RunsView
from services.core.records import MetricPoint, ModelVersionSummary, Run

METRIC_RANGE_MAX_KEYS = 50
"""Metrics whose full history is read for min and max; runs may log thousands of keys."""
CHILD_RUNS_MAX = 200
"""The most child runs listed under a parent."""
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"

_RUN_ID = re.compile(r"[0-9a-f]{32}")

BadgeColor = Literal["red", "orange", "yellow", "blue", "green", "violet", "gray", "primary"]
"""The colours ``st.badge`` accepts."""


@dataclass(frozen=True, slots=True)
class StatusBadge:
    """How a run status is drawn: ``st.badge(label, color=..., icon=...)``."""

    label: str
    """The status as MLflow names it."""
    color: BadgeColor
    """One of Streamlit's badge colours."""
    icon: str
    """A Material icon."""


STATUS_BADGES: Mapping[str, StatusBadge] = {
    "FINISHED": StatusBadge("FINISHED", "green", ":material/check_circle:"),
    "RUNNING": StatusBadge("RUNNING", "blue", ":material/pending:"),
    "SCHEDULED": StatusBadge("SCHEDULED", "gray", ":material/schedule:"),
    "FAILED": StatusBadge("FAILED", "red", ":material/error:"),
    "KILLED": StatusBadge("KILLED", "orange", ":material/cancel:"),
}
"""The one place run statuses get their colour and icon."""


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One metric of a run: its latest value and the range of its history."""

    key: str
    """The metric's name; untrusted text."""
    last: float
    """The latest value MLflow reports; may be NaN or ±inf."""
    minimum: float | None
    """The smallest non-NaN value in the history; None when not read or all NaN."""
    maximum: float | None
    """The largest non-NaN value in the history; None when not read or all NaN."""
    points: int | None
    """How many values were logged; None when the history was not read."""


@dataclass(frozen=True, slots=True)
class MetricsOverview:
    """All metrics of a run, with ranges for the first :data:`METRIC_RANGE_MAX_KEYS`."""

    summaries: tuple[MetricSummary, ...]
    """One per metric key, by name."""
    ranged: int
    """How many keys had their history read (the first ones by name)."""

    @property
    def capped(self) -> bool:
        """True when some metrics show only their latest value."""
        return self.ranged < len(self.summaries)

    @property
    def nan_keys(self) -> tuple[str, ...]:
        """Metrics whose latest value is NaN (tables show those cells as empty)."""
        return tuple(s.key for s in self.summaries if math.isnan(s.last))


def metric_summary(key: str, last: float, history: Sequence[MetricPoint]) -> MetricSummary:
    """The range of one metric's history. NaN values are skipped; ±inf counts as a value."""
    values = [point.value for point in history if not math.isnan(point.value)]
    return MetricSummary(
        key=key,
        last=last,
        minimum=min(values) if values else None,
        maximum=max(values) if values else None,
        points=len(history),
    )


def ranged_keys(run: Run, max_ranged: int = METRIC_RANGE_MAX_KEYS) -> tuple[str, ...]:
    """The metrics whose full history :func:`metrics_overview` reads: the first by name."""
    return tuple(sorted(run.metrics)[:max_ranged])


def metrics_overview(
    run: Run,
    history_of: Callable[[str], Sequence[MetricPoint]],
    max_ranged: int = METRIC_RANGE_MAX_KEYS,
) -> MetricsOverview:
    """Latest value of every metric, and min and max over the full history of the first ones.

    Args:
        run: The run, with its latest metric values.
        history_of: Reads every point of one metric of this run, e.g.
            ``lambda key: cache.metric_history(settings, run_id, key)``. Called once per key,
            for at most ``max_ranged`` keys.
        max_ranged: How many keys (in name order) get their history read.

    Returns:
        One summary per metric key, by name.
    """
    keys = sorted(run.metrics)
    summaries = tuple(
        metric_summary(key, run.metrics[key], history_of(key))
        if index < max_ranged
        else MetricSummary(key, run.metrics[key], None, None, None)
        for index, key in enumerate(keys)
    )
    return MetricsOverview(summaries, min(len(keys), max_ranged))


def metrics_table(overview: MetricsOverview) -> pd.DataFrame:
    """One row per metric: latest, min and max (NaN shows as an empty cell), and point count."""
    rows = [
        {
            "Metric": s.key,
            "Last": s.last,
            "Min": s.minimum,
            "Max": s.maximum,
            "Points": s.points,
        }
        for s in overview.summaries
    ]
    table = pd.DataFrame(rows, columns=["Metric", "Last", "Min", "Max", "Points"])
    return table.astype({"Last": "float64", "Min": "float64", "Max": "float64", "Points": "Int64"})


def key_value_table(values: Mapping[str, str], key_label: str) -> pd.DataFrame:
    """Params or tags as two text columns, sorted by key."""
    rows = sorted(values.items())
    return pd.DataFrame(rows, columns=[key_label, "Value"], dtype="object")


def datasets_table(run: Run) -> pd.DataFrame:
    """One row per dataset the run logged as an input."""
    rows = [
        {
            "Dataset": d.name,
            "Context": d.context,
            "Rows": d.rows,
            "Source": d.source_type,
            "Digest": d.digest,
        }
        for d in run.datasets
    ]
    table = pd.DataFrame(rows, columns=["Dataset", "Context", "Rows", "Source", "Digest"])
    return table.astype({"Rows": "Int64"})


def model_versions_table(versions: Sequence[ModelVersionSummary]) -> pd.DataFrame:
    """One row per registered model version, by model name and version."""
    rows = [
        {
            "Model": v.name,
            "Version": v.version,
            "Aliases": ", ".join(v.aliases),
            "Status": v.status,
            "Registered": v.created_at,
            "Description": v.description,
        }
        for v in sorted(versions, key=lambda v: (v.name, v.version))
    ]
    columns = ["Model", "Version", "Aliases", "Status", "Registered", "Description"]
    return pd.DataFrame(rows, columns=columns)


def child_runs_table(children: Sequence[Run]) -> pd.DataFrame:
    """One row per child run, newest first as given, with each metric's latest value."""
    metric_keys = sorted({key for child in children for key in child.metrics})
    rows = []
    for child in children:
        row: dict[str, object] = {
            "Run": child.name,
            "Run ID": child.run_id,
            "Status": child.status,
            "Started": child.start_time,
            "Duration (s)": child.duration.total_seconds() if child.duration else None,
        }
        row.update({key: child.metrics.get(key) for key in metric_keys})
        rows.append(row)
    columns = ["Run", "Run ID", "Status", "Started", "Duration (s)", *metric_keys]
    return pd.DataFrame(rows, columns=columns)


def selected_run_id(table: pd.DataFrame, rows: Sequence[int]) -> str | None:
    """The run id of the first selected row of a :func:`child_runs_table`, if any."""
    if not rows or rows[0] >= len(table):
        return None
    return str(table["Run ID"].iloc[rows[0]])


def status_badge(status: str) -> StatusBadge:
    """The badge for a run status; unknown statuses are grey."""
    return STATUS_BADGES.get(status, StatusBadge(status or "UNKNOWN", "gray", ":material/help:"))


def format_time(moment: datetime | None) -> str:
    """A timestamp such as "2026-11-24 10:57:50 UTC"; "—" when unknown."""
    return moment.strftime(TIME_FORMAT) if moment else "—"


def format_duration(duration: timedelta) -> str:
    """A duration such as "850 ms", "42.3 s", "3 min 05 s", "2 h 04 min" or "29 d 00 h"."""
    seconds = duration.total_seconds()
    if seconds < 1:
        return f"{max(seconds, 0) * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minute:02d} min"
    days, hour = divmod(hours, 24)
    return f"{days} d {hour:02d} h"


def duration_text(run: Run, now: datetime) -> str:
    """How long the run took, or has been running so far; "—" when it never started."""
    if run.duration is not None:
        return format_duration(run.duration)
    if run.start_time is not None and run.end_time is None and run.status == "RUNNING":
        return f"{format_duration(now - run.start_time)} so far"
    return "—"


def child_runs_filter(run_id: str) -> str:
    """The MLflow filter for the runs nested under ``run_id``."""
    return f"tags.mlflow.parentRunId = '{_checked_run_id(run_id)}'"


def model_versions_filter(run_id: str) -> str:
    """The MLflow filter for the model versions registered from ``run_id``."""
    return f"run_id = '{_checked_run_id(run_id)}'"


def run_page_query(run_id: str) -> dict[str, str]:
    """Query parameters that open the Run page on ``run_id``."""
    return {"run_id": run_id}


def runs_page_query(experiment_id: str) -> dict[str, list[str]]:
    """Query parameters that open the Runs page on one experiment."""
    return RunsView(experiment_ids=(experiment_id,)).to_query()


def _checked_run_id(run_id: str) -> str:
    """A run id safe to quote inside a filter: MLflow's ids are 32 lowercase hex digits."""
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"not an MLflow run id: {run_id!r}")
    return run_id
