"""The fleet at a glance: each model's health, fleet counts, and what changed this week.

Everything comes from what other features already record: the registry (versions, aliases),
the monitoring runs (drift), the application store (alias moves and who approved them, requests,
retraining jobs). The overview page, presentation mode and the exports all read these records.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from services.core.conventions import CHAMPION
from services.core.records import ModelVersionSummary, RegisteredModel, Run
from services.core.wiring import Wiring
from services.governance import promotion
from services.governance.alias_history import alias_history
from services.governance.gates import primary_higher_is_better
from services.governance.requests import PENDING, ROLLBACK, PromotionRequest
from services.monitoring.runs import (
    RED,
    DriftStatus,
    MonitoringRun,
    drift_status,
    latest_monitoring_runs,
)
from services.retraining.jobs import RetrainingJob, list_jobs

if TYPE_CHECKING:
    import pandas as pd

SPARKLINE_BATCHES = 14
"""How many recent monitoring batches a card's drift sparkline shows."""
CHANGES_WINDOW = timedelta(days=7)
"""How far back "what changed" looks."""


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """One registered model, as its card shows it."""

    name: str
    """The registered model; untrusted text."""
    champion: int | None
    """The version ``@champion`` points at; None when unset."""
    champion_since: datetime | None
    """When it became champion through Flightdeck (or was seen moving); None when unknown."""
    approved_by: tuple[str, ...]
    """Who approved that move; untrusted text."""
    primary_metric: str
    """The gates' primary metric for the model, e.g. ``eval_f1``."""
    higher_is_better: bool
    metric_by_version: tuple[tuple[int, float], ...]
    """(version, primary metric of its source run), oldest version first."""
    drift: DriftStatus
    drift_shares: tuple[float, ...]
    """Share of drifted columns in the last :data:`SPARKLINE_BATCHES` batches, oldest first."""
    last_retrain: RetrainingJob | None
    pending_approvals: int
    """Promotion requests of the model waiting for a decision."""

    @property
    def in_alarm(self) -> bool:
        return self.drift.level == RED

    @property
    def champion_metric(self) -> float | None:
        return dict(self.metric_by_version).get(self.champion) if self.champion else None


@dataclass(frozen=True, slots=True)
class FleetCounts:
    models: int
    in_alarm: int
    pending_approvals: int
    retrains_this_week: int


@dataclass(frozen=True, slots=True)
class Change:
    """Something that happened to a model, said in plain language."""

    at: datetime
    model: str
    kind: str
    """``promotion``, ``rollback``, ``alias change``, ``retrain`` or ``drift alarm``."""
    text: str


@dataclass(frozen=True, slots=True)
class Overview:
    """What the overview page, presentation mode and the exports show."""

    models: tuple[ModelHealth, ...]
    counts: FleetCounts
    changes: tuple[Change, ...]
    """Newest first."""
    at: datetime
    """When it was read (aware, UTC)."""


def fleet_overview(services: Wiring, now: datetime | None = None) -> Overview:
    """Read every registered model's health and the week's changes.

    A handful of bulk reads whatever the fleet's size: the models with their aliases, every
    version, their source runs, and each model's latest monitoring runs (the sparkline's
    :data:`SPARKLINE_BATCHES`, which also date the week's drift alarms).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    registry = services.registry
    models = sorted(registry.registered_models(), key=lambda m: m.name)
    versions = registry.model_versions("")
    runs = registry.runs_by_id([v.run_id for v in versions if v.run_id])
    batches = latest_monitoring_runs(registry, [m.name for m in models], SPARKLINE_BATCHES)
    jobs = list_jobs(services.store, limit=500)
    requests = promotion.list_requests(services.store, limit=1000)
    pending = [r for r in requests if r.status == PENDING]
    kinds = {r.request_id: r.kind for r in requests}
    healths: list[ModelHealth] = []
    changes: list[Change] = []
    for model in models:
        own_versions = [v for v in versions if v.name == model.name]
        health = model_health(
            services, model, own_versions, runs, batches.get(model.name, []), jobs, pending
        )
        healths.append(health)
        changes += model_changes(
            services, health, batches.get(model.name, []), jobs, kinds, now - CHANGES_WINDOW
        )
    week_ago = now - timedelta(days=7)
    counts = FleetCounts(
        models=len(healths),
        in_alarm=sum(h.in_alarm for h in healths),
        pending_approvals=len(pending),
        retrains_this_week=sum(job.created_at >= week_ago for job in jobs),
    )
    changes.sort(key=lambda c: c.at, reverse=True)
    return Overview(tuple(healths), counts, tuple(changes), now)


def model_health(
    services: Wiring,
    model: RegisteredModel,
    versions: Sequence[ModelVersionSummary],
    runs: Mapping[str, Run],
    batches: Sequence[MonitoringRun],
    jobs: Sequence[RetrainingJob],
    pending: Sequence[PromotionRequest],
) -> ModelHealth:
    """One model's card, from reads already made."""
    gates = services.governance.gates_for(model.name)
    metric = gates.primary_metric
    higher = primary_higher_is_better(gates)
    trend: list[tuple[int, float]] = []
    for version in sorted(versions, key=lambda v: v.version):
        run = runs.get(version.run_id)
        value = run.metrics.get(metric) if run else None
        if value is not None and math.isfinite(value):
            trend.append((version.version, value))
    champion = model.aliases.get(CHAMPION)
    moves = [
        m
        for m in alias_history(services.store, model.name, "alias", CHAMPION)
        if m.version == champion
    ]
    ordered = sorted(batches, key=lambda b: b.window_end)
    return ModelHealth(
        name=model.name,
        champion=champion,
        champion_since=moves[-1].at if moves else None,
        approved_by=moves[-1].approved_by if moves else (),
        primary_metric=metric,
        higher_is_better=higher,
        metric_by_version=tuple(trend),
        drift=drift_status(ordered, services.governance.drift),
        drift_shares=tuple(b.drift_share for b in ordered[-SPARKLINE_BATCHES:]),
        last_retrain=next((job for job in jobs if job.model == model.name), None),
        pending_approvals=sum(r.model == model.name for r in pending),
    )


def model_changes(
    services: Wiring,
    health: ModelHealth,
    batches: Sequence[MonitoringRun],
    jobs: Sequence[RetrainingJob],
    kinds: Mapping[str, str],
    since: datetime,
) -> list[Change]:
    """What happened to one model since ``since``: alias moves, retrains, drift alarms.

    ``kinds`` maps promotion request ids to their kind (promotion or rollback).
    """
    model = health.name
    changes: list[Change] = []
    for move in alias_history(services.store, model, services.governance.target):
        if move.at < since or move.version is None:
            continue
        when = _day(move.at)
        if move.external:
            kind = "alias change"
            text = f"{model} @{move.alias} was moved to v{move.version} outside Flightdeck"
            text += f" on {when}"
        elif kinds.get(move.request_id or "") == ROLLBACK:
            kind = "rollback"
            text = f"{model} @{move.alias} was rolled back to v{move.version}"
            text += f" on {when}, by {move.actor}"
        else:
            kind = "promotion"
            approvers = ", ".join(move.approved_by) or move.actor
            text = f"{model} v{move.version} became {move.alias} on {when}, approved by {approvers}"
            delta = metric_delta(health, move.version, move.previous)
            if delta:
                text += f"; {delta}"
        changes.append(Change(move.at, model, kind, text + "."))
    for job in jobs:
        if job.model != model or job.created_at < since or job.is_active:
            continue
        result = f"v{job.new_version} registered" if job.new_version is not None else job.status
        proposed = "; proposed for approval" if job.promotion_request_id else ""
        changes.append(
            Change(
                job.created_at,
                model,
                "retrain",
                f"{model} was retrained on {_day(job.created_at)} ({job.trigger}, requested by "
                f"{job.requested_by}): {result}{proposed}.",
            )
        )
    changes += _drift_alarms(services, model, batches, since)
    return changes


def metric_delta(health: ModelHealth, version: int, previous: int | None) -> str:
    """ "eval_f1 +1.8 pts" between two versions' primary metric; empty when either is missing.

    Scores between 0 and 1 (accuracy, F1) are given in percentage points.
    """
    values = dict(health.metric_by_version)
    new, old = values.get(version), values.get(previous) if previous is not None else None
    if new is None or old is None:
        return ""
    change = new - old
    if not change:
        return f"{health.primary_metric} unchanged"
    in_unit = 0 <= new <= 1 and 0 <= old <= 1
    amount = f"{change * 100:+.1f} pts" if in_unit else f"{change:+.4g}"
    verdict = "better" if (change > 0) == health.higher_is_better else "worse"
    return f"{health.primary_metric} {amount} ({verdict})"


def _drift_alarms(
    services: Wiring, model: str, batches: Sequence[MonitoringRun], since: datetime
) -> list[Change]:
    """Each batch since ``since`` at which the model's status turned red."""
    ordered = sorted(batches, key=lambda b: b.window_end)
    thresholds = services.governance.drift
    changes = []
    was_red = False
    for index, batch in enumerate(ordered):
        red = drift_status(ordered[: index + 1], thresholds).level == RED
        if red and not was_red and batch.window_end >= since:
            changes.append(
                Change(
                    batch.window_end,
                    model,
                    "drift alarm",
                    f"{model} went into drift alarm on {_day(batch.window_end)}: "
                    f"{batch.drift_share:.0%} of its columns drifted.",
                )
            )
        was_red = red
    return changes


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment:%b}"


def fleet_table(overview: Overview) -> pd.DataFrame:
    """One row per model, for CSV export."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "Model": h.name,
                "Champion": h.champion,
                "Champion since (UTC)": h.champion_since,
                "Approved by": ", ".join(h.approved_by),
                "Primary metric": h.primary_metric,
                "Champion's value": h.champion_metric,
                "Drift status": h.drift.level,
                "Drift detail": h.drift.reason,
                "Last retrain (UTC)": h.last_retrain.created_at if h.last_retrain else None,
                "Last retrain status": h.last_retrain.status if h.last_retrain else "",
                "Pending approvals": h.pending_approvals,
            }
            for h in overview.models
        ]
    )


def changes_table(overview: Overview) -> pd.DataFrame:
    """The week's changes, newest first, for CSV export."""
    import pandas as pd

    return pd.DataFrame(
        [
            {"When (UTC)": c.at, "Model": c.model, "Kind": c.kind, "What": c.text}
            for c in overview.changes
        ],
        columns=["When (UTC)", "Model", "Kind", "What"],
    )
