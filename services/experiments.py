"""Experiments and runs as tables: pure functions from records to what pages show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from services.records import Experiment, ExperimentActivity, Run


def filter_by_name(experiments: Iterable[Experiment], text: str) -> list[Experiment]:
    """Experiments whose name contains ``text``, ignoring case; all of them for blank text."""
    needle = text.strip().casefold()
    return [e for e in experiments if needle in e.name.casefold()]


def format_tags(tags: Mapping[str, str]) -> str:
    """Tags as one line of ``key=value`` pairs, sorted by key."""
    return ", ".join(f"{key}={value}" for key, value in sorted(tags.items()))


def experiments_table(
    experiments: Sequence[Experiment], activity: Mapping[str, ExperimentActivity]
) -> pd.DataFrame:
    """One row per experiment: what the Experiments page lists.

    "Last update" is the later of the experiment's own change and its newest run's start.
    """
    rows = []
    for experiment in experiments:
        seen = activity.get(experiment.experiment_id)
        times = [t for t in (experiment.last_updated_at, seen and seen.last_run_at) if t]
        rows.append(
            {
                "Name": experiment.name,
                "ID": experiment.experiment_id,
                "Runs": str(seen.run_count) if seen else "",
                "Last update": max(times) if times else None,
                "Tags": format_tags(experiment.tags),
                "Description": experiment.description,
                "Deleted": experiment.deleted,
            }
        )
    columns = ["Name", "ID", "Runs", "Last update", "Tags", "Description", "Deleted"]
    return pd.DataFrame(rows, columns=columns)


def runs_table(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run: identity, status and timing, then every metric and param seen.

    Metric columns are ``metrics.<key>`` and param columns ``params.<key>``, as in MLflow's
    filter syntax, so a column name can be pasted into a filter.
    """
    metric_keys = sorted({key for run in runs for key in run.metrics})
    param_keys = sorted({key for run in runs for key in run.params})
    rows = []
    for run in runs:
        row: dict[str, object] = {
            "Run": run.name,
            "Run ID": run.run_id,
            "Status": run.status,
            "Started": run.start_time,
            "Duration (s)": run.duration.total_seconds() if run.duration else None,
            "User": run.user,
        }
        row.update({f"metrics.{k}": run.metrics.get(k) for k in metric_keys})
        row.update({f"params.{k}": run.params.get(k) for k in param_keys})
        rows.append(row)
    fixed = ["Run", "Run ID", "Status", "Started", "Duration (s)", "User"]
    columns = fixed + [f"metrics.{k}" for k in metric_keys] + [f"params.{k}" for k in param_keys]
    return pd.DataFrame(rows, columns=columns)
