"""What the Monitoring page shows: batches in a time range, the chosen column, file names.

Pure functions over :mod:`services.monitoring.runs`'s records and
:mod:`services.monitoring.drift`'s summary,
so the page only reads widgets and renders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

from services.monitoring.drift import DriftSummary, FeatureDrift
from services.monitoring.runs import MonitoringRun


def monitored_first(models: Iterable[str], monitored: Iterable[str]) -> list[str]:
    """Model names with monitoring runs first, each group by name."""
    watched = set(monitored)
    return sorted(set(models) | watched, key=lambda name: (name not in watched, name))


def aliases_of(runs: Iterable[MonitoringRun]) -> list[str]:
    """The aliases these batches were monitored through, by name."""
    return sorted({run.alias for run in runs if run.alias})


def window_bounds(runs: Sequence[MonitoringRun]) -> tuple[date, date] | None:
    """The first window's start day and the last window's end day (UTC); None without runs."""
    if not runs:
        return None
    return (
        min(run.window_start for run in runs).date(),
        max(run.window_end for run in runs).date(),
    )


def batches(
    runs: Iterable[MonitoringRun],
    alias: str = "",
    window_from: date | None = None,
    window_to: date | None = None,
) -> list[MonitoringRun]:
    """The batches of one alias (or all) whose window overlaps the days, oldest first.

    Args:
        runs: Monitoring runs of one model.
        alias: Keep only this alias; empty keeps every alias.
        window_from: Keep windows that end after this day began (UTC).
        window_to: Keep windows that start before this day ends (UTC).
    """
    after = None if window_from is None else _midnight(window_from)
    before = None if window_to is None else _midnight(window_to + timedelta(days=1))
    kept = [
        run
        for run in runs
        if (not alias or run.alias == alias)
        and (after is None or run.window_end > after)
        and (before is None or run.window_start < before)
    ]
    return sorted(kept, key=lambda run: (run.window_end, run.window_start, run.run_id))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def newest_first(runs: Sequence[MonitoringRun]) -> dict[str, MonitoringRun]:
    """Run id → batch, newest window first, for the batch menu."""
    return {run.run_id: run for run in reversed(runs)}


def sorted_features(summary: DriftSummary) -> list[FeatureDrift]:
    """The summary's columns, drifted first, then by name."""
    return sorted(summary.features, key=lambda f: (not f.drifted, f.column))


def chosen_feature(summary: DriftSummary, wanted: str) -> FeatureDrift | None:
    """The column asked for, else the first drifted one, else the first; None without columns."""
    ordered = sorted_features(summary)
    by_name: Mapping[str, FeatureDrift] = {f.column: f for f in ordered}
    return by_name.get(wanted) or (ordered[0] if ordered else None)


def report_file_name(model: str, run: MonitoringRun) -> str:
    """``<model>-<window start>-<window end>.html``, safe as a file name on any system."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"
    return f"{safe}-{run.window_start:%Y%m%d}-{run.window_end:%Y%m%d}.html"
