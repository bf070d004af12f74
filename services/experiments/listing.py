"""Experiments and runs as tables: pure functions from records to what pages show."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from services.core.records import Experiment, ExperimentActivity


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
