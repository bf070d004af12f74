"""Retraining policies: when would a model be retrained, and what stops it.

:func:`decide` judges one moment: which trigger fires (drift red for N batches since the last
retrain, a primary-metric decay on a labelled batch, a cron schedule), then whether the guards
(cooldown, weekly budget) let it through. The scheduler calls it on an interval with what
happened so far; :func:`backtest` replays it over the stored drift history, so an admin sees
when a policy would have fired, and why, before saving it. Both are pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.governance.config import DriftThresholds, RetrainingPolicy
from services.monitoring.runs import MonitoringRun
from services.retraining.cron import CronSchedule

DRIFT, DECAY, SCHEDULE = "drift", "decay", "schedule"
"""The automatic triggers, strongest first: one evaluation fires at most one of them."""
FIRED, BLOCKED = "fired", "blocked"
BUDGET_WINDOW = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """What a policy decided at one moment."""

    model: str
    """The registered model; untrusted text."""
    at: datetime
    """When (aware, UTC): a batch's window end or a schedule's fire time."""
    trigger: str
    """:data:`DRIFT`, :data:`DECAY` or :data:`SCHEDULE`."""
    outcome: str
    """:data:`FIRED` or :data:`BLOCKED`."""
    reason: str
    """Why the trigger fired, and for a blocked one what blocked it, in plain words."""
    cause: str
    """What caused it, unique per trigger: the latest batch's run id, or the fire time."""
    cause_run_id: str | None = None
    """The monitoring run behind a drift or decay trigger."""

    @property
    def fired(self) -> bool:
        return self.outcome == FIRED


@dataclass(frozen=True, slots=True)
class DecayBaseline:
    """What a labelled batch's primary metric is compared with."""

    metric: str
    """The primary metric, e.g. ``eval_f1``."""
    champion_score: float
    """The champion's score on its held-out set."""
    higher_is_better: bool


def decide(
    policy: RetrainingPolicy,
    model: str,
    at: datetime,
    batches: Sequence[MonitoringRun],
    retrains: Sequence[datetime],
    thresholds: DriftThresholds,
    *,
    schedule_fired: datetime | None = None,
    baseline: DecayBaseline | None = None,
) -> PolicyDecision | None:
    """The policy's decision at ``at``, or None when no trigger fires.

    Args:
        policy: The model's retraining policy.
        model: The registered model.
        at: The moment judged.
        batches: The model's monitoring runs that ended by ``at``, in any order.
        retrains: When the model's retrains (of any trigger) were requested, before ``at``.
        thresholds: The drift alarm share.
        schedule_fired: The schedule's fire time, when it fired since the last evaluation.
        baseline: The champion's score, for the decay trigger.
    """
    trigger = _trigger(policy, model, at, batches, retrains, thresholds, schedule_fired, baseline)
    if trigger is None:
        return None
    kind, reason, cause, cause_run_id = trigger
    blocked = _guard(policy, at, retrains)
    return PolicyDecision(
        model=model,
        at=at,
        trigger=kind,
        outcome=BLOCKED if blocked else FIRED,
        reason=f"{reason}; blocked: {blocked}" if blocked else reason,
        cause=cause,
        cause_run_id=cause_run_id,
    )


def backtest(
    policy: RetrainingPolicy,
    model: str,
    batches: Sequence[MonitoringRun],
    thresholds: DriftThresholds,
    *,
    baseline: DecayBaseline | None = None,
) -> list[PolicyDecision]:
    """Replay ``policy`` over the drift history: every decision it would have made, oldest
    first, counting the retrains it would itself have started against its guards.

    The replay judges each batch's window end and each schedule fire time in the history's span.
    """
    ordered = sorted(batches, key=lambda b: b.window_end)
    if not ordered:
        return []
    moments: list[tuple[datetime, bool]] = [(b.window_end, False) for b in ordered]
    if policy.schedule.strip():
        schedule = CronSchedule.parse(policy.schedule)
        start = ordered[0].window_start
        moments += [(t, True) for t in schedule.fire_times(start, ordered[-1].window_end)]
    moments.sort()
    decisions: list[PolicyDecision] = []
    retrains: list[datetime] = []
    seen: set[tuple[str, str]] = set()
    for at, is_fire_time in moments:
        decision = decide(
            policy,
            model,
            at,
            [b for b in ordered if b.window_end <= at],
            retrains,
            thresholds,
            schedule_fired=at if is_fire_time else None,
            baseline=baseline,
        )
        if decision is None or (decision.trigger, decision.cause) in seen:
            continue
        seen.add((decision.trigger, decision.cause))
        decisions.append(decision)
        if decision.fired:
            retrains.append(at)
    return decisions


def _trigger(
    policy: RetrainingPolicy,
    model: str,
    at: datetime,
    batches: Sequence[MonitoringRun],
    retrains: Sequence[datetime],
    thresholds: DriftThresholds,
    schedule_fired: datetime | None,
    baseline: DecayBaseline | None,
) -> tuple[str, str, str, str | None] | None:
    """(trigger, reason, cause, cause run id) of the strongest trigger that fires."""
    last_retrain = max((r for r in retrains if r < at), default=None)
    since = sorted(
        (
            b
            for b in batches
            if b.window_end <= at and (not last_retrain or b.window_end > last_retrain)
        ),
        key=lambda b: b.window_end,
    )
    wanted = policy.drift_red_batches
    if wanted and len(since) >= wanted:
        recent = since[-wanted:]
        if all(b.drift_share >= thresholds.alarm_share for b in recent):
            shares = ", ".join(f"{b.drift_share:.2f}" for b in recent)
            reason = (
                f"drift share ≥ {thresholds.alarm_share:g} in {wanted} batches in a row "
                f"({shares})" + (" since the last retrain" if last_retrain else "")
            )
            return DRIFT, reason, recent[-1].run_id, recent[-1].run_id
    if policy.decay_threshold and baseline is not None and since:
        latest = since[-1]
        live = latest.performance.get(baseline.metric)
        if live is not None and math.isfinite(live):
            loss = (
                baseline.champion_score - live
                if baseline.higher_is_better
                else live - baseline.champion_score
            )
            if loss >= policy.decay_threshold:
                reason = (
                    f"{baseline.metric} {live:.4g} on the latest labelled batch, "
                    f"{loss:.4g} worse than the champion's {baseline.champion_score:.4g} "
                    f"(threshold {policy.decay_threshold:g})"
                )
                return DECAY, reason, latest.run_id, latest.run_id
    if schedule_fired is not None and policy.schedule.strip():
        return (
            SCHEDULE,
            f"the schedule {policy.schedule!r} fired at {schedule_fired:%Y-%m-%d %H:%M} UTC",
            schedule_fired.isoformat(),
            None,
        )
    return None


def _guard(policy: RetrainingPolicy, at: datetime, retrains: Sequence[datetime]) -> str:
    """Why the guards block a retrain at ``at``; empty when they let it through."""
    before = [r for r in retrains if r < at]
    if before and policy.cooldown_hours:
        last = max(before)
        until = last + timedelta(hours=policy.cooldown_hours)
        if at < until:
            return (
                f"cooldown of {policy.cooldown_hours:g} h after the retrain of "
                f"{last:%Y-%m-%d %H:%M} UTC, until {until:%Y-%m-%d %H:%M} UTC"
            )
    this_week = [r for r in before if r > at - BUDGET_WINDOW]
    if len(this_week) >= policy.max_per_week:
        return f"budget of {policy.max_per_week} retrains in 7 days used ({len(this_week)})"
    return ""
