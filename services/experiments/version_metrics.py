"""A metric across a model's versions, read from the runs they were registered from, and
the registered models related to the compared runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from services.core.errors import NotFound
from services.core.records import ModelVersionSummary, Run
from services.experiments.compare import metric_names

MAX_MODEL_LOOKUPS = 200
"""At most this many version source runs are read to find models related to the runs."""


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
