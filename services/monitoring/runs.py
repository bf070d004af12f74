"""Monitoring runs: drift of a model's inputs, batch by batch, kept in MLflow.

Each batch of current data is compared with the reference sample logged by the training run of
the version an alias points at (``reference/reference.parquet``), and logged as a run of the
experiment :data:`MONITORING_EXPERIMENT`::

    tags        flightdeck.model, flightdeck.version, flightdeck.alias,
                flightdeck.window_start, flightdeck.window_end (ISO 8601, UTC)
    metrics     drift_share, drifted_columns, dataset_drift (0/1), drift_score.<column>
    artifacts   drift/summary.json   Flightdeck's compact summary, what pages draw from
                drift/snapshot.json  Evidently's snapshot
                drift/report.html    Evidently's report: untrusted content

Everything goes through the gateway (:mod:`services.core.gateway`); nothing here imports MLflow.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pandas as pd

from services.core import filters
from services.core.conventions import (
    ALIAS_TAG,
    COLUMN_KEYS_TAG,
    EVAL_PREFIX,
    FAILURE_TAG,
    MODEL_TAG,
    MONITORING_EXPERIMENT,
    REFERENCE_PATH,
    VERSION_TAG,
    WINDOW_END_TAG,
    WINDOW_START_TAG,
)
from services.core.errors import DriftError, FlightdeckError, NotFound
from services.core.gateway import NEWEST_FIRST, TrackingGateway
from services.core.records import RunPage
from services.governance.config import DriftThresholds
from services.monitoring.drift import (
    DEFAULT_MAX_ROWS,
    DriftResult,
    DriftSummary,
    compute_drift,
    summary_from_json,
    summary_to_json,
)

SUMMARY_PATH, SNAPSHOT_PATH, REPORT_PATH = (
    "drift/summary.json",
    "drift/snapshot.json",
    "drift/report.html",
)


DRIFT_SHARE, DRIFTED_COLUMNS, DATASET_DRIFT = "drift_share", "drifted_columns", "dataset_drift"
SCORE_PREFIX = "drift_score."
_MAX_METRIC_KEY = 250
_UNSAFE_KEY_CHARACTERS = re.compile(r"[^\w.\- ]")
"""MLflow keys take letters, digits, ``_ . - /``, spaces and (not on Windows servers) colons;
slashes and colons are replaced too, so a key never reads as a path."""
_MAX_COLUMN_KEYS_TAG = 7000
_SEARCH_PAGE = 1000
FINISHED = "attributes.status = 'FINISHED'"


@dataclass(frozen=True, slots=True)
class MonitoringRun:
    """One monitored batch, as read from its run's tags and metrics."""

    run_id: str
    """The MLflow run holding the batch's results."""
    model: str
    """The registered model's name; untrusted text."""
    version: int
    """The model version the batch was compared against (its reference sample)."""
    alias: str
    """The alias that pointed at ``version`` when the batch was monitored, e.g. "champion"."""
    window_start: datetime
    """Start of the batch's time window (aware, UTC)."""
    window_end: datetime
    """End of the batch's time window (aware, UTC)."""
    drift_share: float
    """Share of drifted columns, 0 to 1."""
    drifted_columns: int
    """How many columns drifted."""
    dataset_drift: bool
    """True when Evidently judged the whole dataset drifted."""
    scores: Mapping[str, float] = field(default_factory=dict)
    """Column -> drift score (a p-value or a distance, see the summary for which)."""
    performance: Mapping[str, float] = field(default_factory=dict)
    """The model's ``eval_*`` metrics on the batch, when the batch had labels."""


GREEN, AMBER, RED, UNKNOWN = "green", "amber", "red", "unknown"
"""Drift status levels, from :func:`drift_status`."""


@dataclass(frozen=True, slots=True)
class DriftStatus:
    """A model's drift status, from its latest monitoring runs."""

    level: str
    """:data:`GREEN`, :data:`AMBER`, :data:`RED` or :data:`UNKNOWN`."""
    reason: str
    """Why, for a person: e.g. "drift share ≥ 0.3 in the last 2 batches (0.42, 0.38)"."""


# -- reference data ------------------------------------------------------------------------------


def reference_for(gateway: TrackingGateway, model: str, alias: str) -> tuple[int, pd.DataFrame]:
    """The version ``alias`` points at and its reference sample.

    Raises:
        DriftError: The model, the alias, the version or its reference sample is missing.
    """
    try:
        version = gateway.alias_holder(model, alias)
    except NotFound as exc:
        raise DriftError(
            f"There is no registered model named {model!r}, so there is no reference sample "
            "to compare with. Check the model's name on the Models page."
        ) from exc
    if version is None:
        raise DriftError(
            f"Model {model!r} has no @{alias} alias, so there is no version to monitor. Set the "
            "alias (a promotion) or name another one."
        )
    return version, reference_for_version(gateway, model, version)


def reference_for_version(gateway: TrackingGateway, model: str, version: int) -> pd.DataFrame:
    """The reference sample logged by the training run of a model version.

    Raises:
        DriftError: The version, its source run or its reference sample is missing, or the
            sample cannot be read.
    """
    try:
        record = gateway.get_model_version(model, version)
    except NotFound as exc:
        raise DriftError(f"{exc} No reference sample can be read for it.") from exc
    if not record.run_id:
        raise DriftError(
            f"Version {version} of {model!r} has no source run, so it has no reference sample. "
            f"Register versions from a training run that logs {REFERENCE_PATH}."
        )
    try:
        content = gateway.read_artifact(record.run_id, REFERENCE_PATH)
    except NotFound as exc:
        raise DriftError(
            f"Version {version} of {model!r} has no reference sample: its training run "
            f"{record.run_id} did not log {REFERENCE_PATH}. Log a sample of the training data "
            "there (with the target column) and register the version again."
        ) from exc
    try:
        return pd.read_parquet(io.BytesIO(content))
    except (ValueError, OSError) as exc:
        raise DriftError(
            f"The reference sample of version {version} of {model!r} (run {record.run_id}, "
            f"{REFERENCE_PATH}) is not a readable Parquet file: {exc}."
        ) from exc


def run_check(
    gateway: TrackingGateway,
    *,
    model: str,
    alias: str,
    current: pd.DataFrame,
    max_rows: int = DEFAULT_MAX_ROWS,
    target: str | None = None,
    prediction: str | None = None,
) -> tuple[int, DriftResult]:
    """Compare ``current`` with the reference of the version ``alias`` points at; log nothing.

    Returns:
        The version compared against, and the result.

    Raises:
        DriftError: No reference, the columns differ, or the data is empty.
    """
    version, reference = reference_for(gateway, model, alias)
    result = compute_drift(
        reference, current, max_rows=max_rows, target=target, prediction=prediction
    )
    return version, result


# -- writing --------------------------------------------------------------------------------------


def log_monitoring_run(
    gateway: TrackingGateway,
    *,
    model: str,
    version: int,
    alias: str,
    window_start: datetime,
    window_end: datetime,
    result: DriftResult,
    started_at: datetime | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> str:
    """Log one monitored batch as a run of :data:`MONITORING_EXPERIMENT`; returns its id.

    If anything fails once the run exists, the run is ended FAILED with the reason in the tag
    ``flightdeck.failure`` (as far as the server still answers) and the error is raised again,
    so no half-written run looks finished.

    Args:
        gateway: The MLflow gateway.
        model: The registered model's name.
        version: The version whose reference sample was compared.
        alias: The alias that points at ``version``.
        window_start: Start of the batch's window (aware).
        window_end: End of the batch's window (aware).
        result: What :func:`~services.monitoring.drift.compute_drift` returned.
        started_at: The run's start time; now when None (the demo backdates its batches).
        extra_tags: More tags for the run, e.g. a seeding marker.
    """
    start, end = _utc(window_start), _utc(window_end)
    if end < start:
        raise DriftError(f"The window ends ({_iso(end)}) before it starts ({_iso(start)}).")
    experiment_id = gateway.experiment_id(MONITORING_EXPERIMENT, create=True)
    assert experiment_id is not None  # create=True returns an id or raises
    summary = result.summary
    metrics, column_keys = _metrics(summary)
    tags = {
        "mlflow.runName": f"{model} v{version} {start:%Y-%m-%d %H:%M}",
        MODEL_TAG: model,
        VERSION_TAG: str(version),
        ALIAS_TAG: alias,
        WINDOW_START_TAG: _iso(start),
        WINDOW_END_TAG: _iso(end),
        **(extra_tags or {}),
    }
    keys_text = json.dumps(column_keys, ensure_ascii=False) if column_keys else ""
    if keys_text and len(keys_text) <= _MAX_COLUMN_KEYS_TAG:
        tags[COLUMN_KEYS_TAG] = keys_text
    run_id = gateway.create_run(experiment_id, tags, start_time=started_at)
    try:
        gateway.log_metrics(run_id, metrics)
        gateway.log_artifact_text(run_id, SUMMARY_PATH, summary_to_json(summary))
        gateway.log_artifact_text(run_id, SNAPSHOT_PATH, result.snapshot_json)
        gateway.log_artifact_text(run_id, REPORT_PATH, result.html)
        gateway.end_run(run_id, "FINISHED")
    except BaseException as exc:
        _mark_failed(gateway, run_id, exc)
        raise
    return run_id


def _mark_failed(gateway: TrackingGateway, run_id: str, exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    try:
        gateway.set_run_tags(run_id, {FAILURE_TAG: reason})
        gateway.end_run(run_id, "FAILED")
    except FlightdeckError:
        pass  # the server is gone too; the original error says more and is raised by the caller


def _metrics(summary: DriftSummary) -> tuple[dict[str, float], dict[str, str]]:
    """The run's metrics, and {key suffix: column} for columns whose name had to change."""
    metrics: dict[str, float] = {
        DRIFT_SHARE: summary.drift_share,
        DRIFTED_COLUMNS: float(summary.drifted_columns),
        DATASET_DRIFT: 1.0 if summary.dataset_drift else 0.0,
    }
    renamed: dict[str, str] = {}
    for feature in summary.features:
        suffix = metric_suffix(feature.column, taken=metrics)
        if suffix != feature.column:
            renamed[suffix] = feature.column
        metrics[SCORE_PREFIX + suffix] = feature.score  # NaN when Evidently gave no score
    return metrics, renamed


def metric_suffix(column: str, taken: Collection[str] = ()) -> str:
    """The part after ``drift_score.`` for a column: characters MLflow rejects become ``_``.

    Within MLflow's 250-character key limit; a name that collides with a key in ``taken`` gets
    ``_2``, ``_3``, … appended.
    """
    room = _MAX_METRIC_KEY - len(SCORE_PREFIX) - 4
    base = _UNSAFE_KEY_CHARACTERS.sub("_", column)[:room] or "_"
    suffix, number = base, 2
    while SCORE_PREFIX + suffix in taken:
        suffix, number = f"{base}_{number}", number + 1
    return suffix


# -- reading --------------------------------------------------------------------------------------


class RunReader(Protocol):
    """What listing monitoring runs needs from MLflow (a :class:`TrackingGateway`)."""

    def experiment_id(self, name: str, create: bool = False) -> str | None: ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        order_by: Sequence[str] = ...,
        max_results: int = 200,
        page_token: str | None = None,
    ) -> RunPage: ...


def monitoring_runs(gateway: RunReader, model: str) -> list[MonitoringRun]:
    """The model's finished monitoring runs, oldest window first; [] when there are none.

    One search on :data:`MONITORING_EXPERIMENT` (a page per 1,000 runs); metrics come with the
    run records, so there is no call per run. Runs whose tags cannot be read are left out.
    """
    query = filters.all_of(filters.tag_equals(MODEL_TAG, model), FINISHED)
    found, _ = _search_monitoring(gateway, query)
    return [r for r in found if r.model == model]


def latest_monitoring_runs(
    gateway: RunReader, models: Sequence[str], per_model: int
) -> dict[str, list[MonitoringRun]]:
    """The newest ``per_model`` finished monitoring runs of each of ``models``, oldest window
    first: what a landing page needs, read at the same cost whatever the history's length.

    One newest-first search sized for the whole fleet (``per_model`` runs a model); then one
    search per model only for the models it left short, and only when older runs remain (their
    batches are older than the others', or other models hold more of the newest runs).
    """
    wanted = set(models)
    budget = len(wanted) * per_model
    grouped: dict[str, list[MonitoringRun]] = {model: [] for model in wanted}
    newest, more = _search_monitoring(gateway, FINISHED, limit=budget)
    for record in newest:
        if record.model in wanted:
            grouped[record.model].append(record)
    if more:
        for model in wanted:
            if len(grouped[model]) < per_model:
                own = filters.all_of(filters.tag_equals(MODEL_TAG, model), FINISHED)
                found, _ = _search_monitoring(gateway, own, limit=per_model)
                grouped[model] = [r for r in found if r.model == model]
    return {
        model: sorted(runs, key=_window_order)[-per_model:]
        for model, runs in grouped.items()
        if runs
    }


def _search_monitoring(
    gateway: RunReader, query: str, limit: int | None = None
) -> tuple[list[MonitoringRun], bool]:
    """The monitoring runs matching ``query``, oldest window first; with a ``limit``, only
    that many of the newest (by start time). The flag says whether older runs were left
    unread (counted in runs, so a run whose tags cannot be read still counts)."""
    experiment_id = gateway.experiment_id(MONITORING_EXPERIMENT)
    if experiment_id is None or limit == 0:
        return [], False
    found: list[MonitoringRun] = []
    token: str | None = None
    read = 0
    while True:
        size = _SEARCH_PAGE if limit is None else min(_SEARCH_PAGE, limit - read)
        page = gateway.search_runs(
            [experiment_id], query, NEWEST_FIRST, max_results=size, page_token=token
        )
        read += len(page.runs)
        for run in page.runs:
            record = _monitoring_record(run.run_id, run.tags, run.metrics)
            if record is not None:
                found.append(record)
        token = page.next_page_token
        if not token or (limit is not None and read >= limit):
            break
    # Read newest first; reversed, runs of one window keep the order they were logged in, so
    # the one logged last is that window's latest (files dropped on one day share a window).
    return sorted(reversed(found), key=_window_order), token is not None


def _window_order(run: MonitoringRun) -> tuple[datetime, datetime]:
    return (run.window_start, run.window_end)


def _monitoring_record(
    run_id: str, tags: Mapping[str, str], metrics: Mapping[str, float]
) -> MonitoringRun | None:
    try:
        version = int(tags[VERSION_TAG])
        start = _parse_time(tags[WINDOW_START_TAG])
        end = _parse_time(tags[WINDOW_END_TAG])
        share = float(metrics[DRIFT_SHARE])
    except (KeyError, ValueError):
        return None
    renamed: dict[str, str] = {}
    if COLUMN_KEYS_TAG in tags:
        try:
            loaded = json.loads(tags[COLUMN_KEYS_TAG])
            renamed = {str(k): str(v) for k, v in loaded.items()}
        except (ValueError, AttributeError):
            renamed = {}
    scores = {
        renamed.get(key[len(SCORE_PREFIX) :], key[len(SCORE_PREFIX) :]): value
        for key, value in metrics.items()
        if key.startswith(SCORE_PREFIX)
    }
    return MonitoringRun(
        run_id=run_id,
        model=tags.get(MODEL_TAG, ""),
        version=version,
        alias=tags.get(ALIAS_TAG, ""),
        window_start=start,
        window_end=end,
        drift_share=share,
        drifted_columns=int(metrics.get(DRIFTED_COLUMNS, 0)),
        dataset_drift=bool(metrics.get(DATASET_DRIFT, 0.0) >= 0.5),
        scores=scores,
        performance={k: v for k, v in metrics.items() if k.startswith(EVAL_PREFIX)},
    )


def scores_frame(runs: Sequence[MonitoringRun]) -> pd.DataFrame:
    """Drift scores over time: one row per run (indexed by window start), one column per column.

    A column missing from a run (the schema changed) is NaN there.
    """
    if not runs:
        return pd.DataFrame(index=pd.DatetimeIndex([], tz=UTC, name="window_start"))
    frame = pd.DataFrame.from_records(
        [dict(run.scores) for run in runs],
        index=pd.DatetimeIndex([run.window_start for run in runs], name="window_start"),
    )
    return frame


def load_summary(gateway: TrackingGateway, run_id: str) -> DriftSummary:
    """The drift summary of one monitoring run.

    Raises:
        DriftError: The run has no summary, or it cannot be read.
    """
    try:
        content = gateway.read_artifact(run_id, SUMMARY_PATH)
    except NotFound as exc:
        raise DriftError(
            f"Run {run_id} has no drift summary ({SUMMARY_PATH}): it is not a monitoring run, "
            "or it failed before logging one."
        ) from exc
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DriftError(f"The drift summary of run {run_id} is not UTF-8 text.") from exc
    return summary_from_json(text)


def report_html(gateway: TrackingGateway, run_id: str) -> bytes:
    """Evidently's HTML report of one monitoring run: untrusted, never render it in the app.

    Raises:
        DriftError: The run has no report.
    """
    try:
        return gateway.read_artifact(run_id, REPORT_PATH)
    except NotFound as exc:
        raise DriftError(
            f"Run {run_id} has no drift report ({REPORT_PATH}): it is not a monitoring run, or "
            "it failed before logging one."
        ) from exc


# -- status ---------------------------------------------------------------------------------------


def drift_status(runs: Sequence[MonitoringRun], thresholds: DriftThresholds) -> DriftStatus:
    """The model's drift status from its monitoring runs (oldest window first).

    Red when each of the last ``consecutive`` runs reached ``alarm_share``; amber when the
    latest reached ``warning_share``; green otherwise; unknown without runs.
    """
    if not runs:
        return DriftStatus(UNKNOWN, "no monitoring runs yet")
    ordered = sorted(runs, key=lambda r: (r.window_start, r.window_end))
    latest = ordered[-1]
    recent = ordered[-thresholds.consecutive :]
    if len(recent) == thresholds.consecutive and all(
        r.drift_share >= thresholds.alarm_share for r in recent
    ):
        shares = ", ".join(f"{r.drift_share:.2f}" for r in recent)
        batches = "batch" if thresholds.consecutive == 1 else f"{thresholds.consecutive} batches"
        return DriftStatus(
            RED, f"drift share ≥ {thresholds.alarm_share:g} in the last {batches} ({shares})"
        )
    if latest.drift_share >= thresholds.warning_share:
        return DriftStatus(
            AMBER,
            f"drift share {latest.drift_share:.2f} in the latest batch "
            f"(≥ {thresholds.warning_share:g})",
        )
    return DriftStatus(
        GREEN,
        f"drift share {latest.drift_share:.2f} in the latest batch "
        f"(below {thresholds.warning_share:g})",
    )


# -- time -----------------------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise DriftError(f"{moment.isoformat()} has no time zone; give times in UTC (…Z).")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
