"""The control loop: what keeps Flightdeck true while nobody is looking.

``python -m jobs.scheduler`` runs :func:`run_pass` every interval; pages only read what it
maintains. Each pass, in this order, every step idempotent and reported on its own (one step
failing does not stop the next):

1. **Retraining**: follow jobs, judge finished ones, apply the retraining policies.
2. **External changes**: alias and stage moves made outside Flightdeck, for every model (MLflow's
   registry webhooks, where it sends them, record alias moves sooner:
   :mod:`services.control_loop.registry_webhooks`).
3. **Reconciliation**: requests stuck ``executing``, overdue requests.
4. **Scheduled drift**: each new batch of every ``[monitoring.sources]`` model, and requested
   backfills, exactly once (:mod:`services.monitoring.scheduled_drift`).
5. **Notifications**: the outbox's due webhooks, retried with backoff
   (:mod:`services.governance.notifications`); steps 1, 2 and 4 record what they tell.
6. **Audit anchor**: the audit log's newest event, anchored in MLflow.
7. **History prefetch**: the metric histories of runs that ended since the last such step, kept
   in the store (:mod:`services.experiments.history_store`), so their first chart is instant.

Only the holder of the leader lock (:mod:`services.control_loop.leadership`) runs passes, so several
replicas may each start a loop. The holder records each pass (its heartbeat) in the store;
:func:`loop_health` says how fresh it is, for every page's sidebar.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from services.core.errors import FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.store import Store, aware, loop_passes
from services.core.wiring import Wiring
from services.experiments.history_store import HistoryStore, prefetch_ended_runs
from services.governance import promotion
from services.governance.alias_history import detect_external_changes
from services.governance.audit_anchor import anchor_audit_head
from services.monitoring.runs import RED, drift_status, monitoring_runs
from services.monitoring.scheduled_drift import monitor_model
from services.retraining.base import SUCCEEDED
from services.retraining.jobs import RetrainingJob, jobs_started_between
from services.retraining.loop import follow_jobs
from services.retraining.policy import FIRED
from services.retraining.scheduler import run_policies

RETRAINING = "retraining"
EXTERNAL_CHANGES = "external changes"
HISTORY_PREFETCH = "history prefetch"
FIRST_PREFETCH_WINDOW = timedelta(days=1)
"""How far back the first pass against a store looks for ended runs to prefetch."""
LATE_AFTER_INTERVALS = 3
"""The sidebar turns amber when no pass finished for this many intervals."""
KEPT_PASSES = 500
"""Heartbeat rows kept; older ones are deleted as new ones come."""


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one step of a pass did, in a few words, or why it could not."""

    name: str
    done: str
    problem: str = ""


@dataclass(frozen=True, slots=True)
class PassReport:
    """One pass: when, by whom, and each step's report."""

    holder: str
    started_at: datetime
    finished_at: datetime
    interval_s: float
    steps: tuple[StepReport, ...]

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def completed(self, name: str) -> bool:
        """Whether the step called ``name`` ran to the end (possibly with partial problems)."""
        return any(step.name == name and step.done for step in self.steps)


@dataclass(frozen=True, slots=True)
class LoopHealth:
    """How fresh the control loop's last pass is."""

    last: PassReport | None
    """The newest pass; None when no loop ever ran against this store."""
    late: bool
    """No pass for :data:`LATE_AFTER_INTERVALS` intervals (or never)."""


@dataclass(frozen=True, slots=True)
class PassInputs:
    """What a pass needs besides the wiring, kept between passes by the caller."""

    gateway: TrackingGateway
    """The MLflow gateway, for what monitoring writes (the wiring's registry, typed in full)."""
    data_dir: Path
    """Flightdeck's data folder, for ``{data_dir}`` in a drift source's path."""
    job_env: dict[str, str]
    stuck_after: timedelta
    last_check: datetime
    """The previous pass's start: a retraining schedule fires when one of its times is between."""


def run_pass(
    services: Wiring, inputs: PassInputs, now: datetime, holder: str, interval_s: float
) -> PassReport:
    """Run every step once, in order, and return what each did."""
    steps = (
        _step(RETRAINING, lambda: _retraining(services, inputs, now)),
        _step(EXTERNAL_CHANGES, lambda: _external_changes(services)),
        _step("reconciliation", lambda: _reconciliation(services, inputs, now)),
        _step("scheduled drift", lambda: _scheduled_drift(services, inputs, now)),
        _step("notifications", lambda: _notifications(services, now)),
        _step("audit anchor", lambda: _anchor(services)),
        _step(HISTORY_PREFETCH, lambda: _history_prefetch(services, inputs, now)),
    )
    return PassReport(holder, now, _clock(now), interval_s, steps)


def _clock(started: datetime) -> datetime:
    return max(datetime.now(started.tzinfo), started)


def _step(name: str, action: Callable[[], str | tuple[str, str]]) -> StepReport:
    """Run one step; its report says what it did, and what it could not (a partial failure)."""
    try:
        outcome = action()
    except FlightdeckError as exc:  # MLflow or the store is down: the next pass tries again
        return StepReport(name, "", str(exc))
    done, problem = (outcome, "") if isinstance(outcome, str) else outcome
    return StepReport(name, done, problem)


def _retraining(services: Wiring, inputs: PassInputs, now: datetime) -> str:
    # Each start falls in one pass's window (the previous pass's start to this one's): told once.
    for job in jobs_started_between(services.store, inputs.last_check, now):
        _tell_about_job(services, job, "retrain_started", now)
    followed = follow_jobs(services, services.backend)
    for job in followed:
        if job.outcome is not None:  # judged in this pass
            ended = "retrain_finished" if job.status == SUCCEEDED else "retrain_failed"
            _tell_about_job(services, job, ended, now)
    decisions = run_policies(
        services, services.backend, inputs.job_env, last_check=inputs.last_check, now=now
    )
    fired = sum(d.outcome == FIRED for d in decisions)
    return (
        f"{len(followed)} job(s) changed, {len(decisions)} decision(s), {fired} retrain(s) started"
    )


def _tell_about_job(services: Wiring, job: RetrainingJob, event: str, now: datetime) -> None:
    """Notify that a retrain started, finished or failed; ``event`` (``retrain_started``,
    ``retrain_finished`` or ``retrain_failed``) is the caller's, who saw the change."""
    text = f"Retraining of {job.model} (job {job.job_id[:8]}): {event.split('_')[1]}." + (
        f" {job.outcome}" if job.outcome and event != "retrain_started" else ""
    )
    details = {"model": job.model, "job_id": job.job_id, "status": job.status}
    services.notifier.tell(event, text, details, now)


def _external_changes(services: Wiring) -> tuple[str, str]:
    since = _last_watched(services.store)
    models = services.registry.registered_models()
    changed: list[str] = []
    unreadable: list[str] = []
    for model in models:
        try:
            moved = detect_external_changes(services, model.name, since)
            changed += [f"{model.name} {target}" for target in moved]
        except FlightdeckError:
            unreadable.append(model.name)  # one model's failure leaves the others' detection
    done = f"{len(models)} model(s) checked, {len(changed)} external move(s) recorded"
    problem = f"could not read {len(unreadable)}: {', '.join(unreadable[:5])}" if unreadable else ""
    return done, problem


def last_retraining_check(store: Store) -> datetime | None:
    """When the newest pass whose retraining step ran started, by any replica: the next pass
    looks at what happened since (jobs started, schedules due), so nothing is told or fired
    twice, and a schedule missed while no loop ran fires once."""
    return _last_completed(store, RETRAINING)


def _last_watched(store: Store) -> datetime | None:
    """When the newest pass that checked every model for external moves started."""
    for report in recent_passes(store, limit=10):
        step = next((s for s in report.steps if s.name == EXTERNAL_CHANGES), None)
        if step is not None and step.done and not step.problem:  # every model was read
            return report.started_at
    return None


def _reconciliation(services: Wiring, inputs: PassInputs, now: datetime) -> str:
    resolved = promotion.reconcile(services, stuck_after=inputs.stuck_after, now=now)
    return f"{len(resolved)} request(s) resolved or expired"


def _scheduled_drift(services: Wiring, inputs: PassInputs, now: datetime) -> tuple[str, str]:
    sources = services.governance.drift_sources
    if not sources:
        return "no [monitoring.sources] configured", ""
    logged: list[str] = []
    problems: list[str] = []
    for model, source in sorted(sources.items()):
        try:
            before = _in_alarm(services, inputs.gateway, model)
            new = monitor_model(inputs.gateway, services.store, model, source, inputs.data_dir, now)
            if new and _in_alarm(services, inputs.gateway, model) != before:
                services.notifier.tell(
                    "drift_alarm_cleared" if before else "drift_alarm_raised",
                    f"Drift alarm {'cleared' if before else 'raised'} for {model}.",
                    {"model": model},
                    now,
                )
            logged += new
        except FlightdeckError as exc:
            problems.append(f"{model}: {exc}")
    return f"{len(logged)} new batch(es) monitored", "; ".join(problems)


def _in_alarm(services: Wiring, gateway: TrackingGateway, model: str) -> bool:
    status = drift_status(monitoring_runs(gateway, model), services.governance.drift)
    return status.level == RED


def _notifications(services: Wiring, now: datetime) -> tuple[str, str]:
    if not services.governance.webhook_url:
        return "no webhook configured", ""
    # Now, not the pass's start: what the steps before recorded is due too.
    delivered, failed = services.notifier.deliver(_clock(now))
    return f"{delivered} delivered", f"{failed} failed, retried later" if failed else ""


def _anchor(services: Wiring) -> str:
    if services.anchor is None:
        return "no anchor configured"
    result = anchor_audit_head(services.store, services.anchor)
    if result.head is None:
        return "the audit log is empty"
    return f"anchored at event {result.head.seq}" + ("" if result.moved else " (unchanged)")


def _history_prefetch(services: Wiring, inputs: PassInputs, now: datetime) -> str:
    since = _last_completed(services.store, HISTORY_PREFETCH) or now - FIRST_PREFETCH_WINDOW
    kept = HistoryStore(services.store)
    runs = prefetch_ended_runs(inputs.gateway, kept, since)
    return f"{runs} ended run(s) looked at; {kept.size().histories} histories kept in all"


def _last_completed(store: Store, step: str) -> datetime | None:
    """When the newest pass whose ``step`` ran to the end started."""
    for report in recent_passes(store, limit=10):
        if report.completed(step):
            return report.started_at
    return None


# -- heartbeat ------------------------------------------------------------------------------------


def record_pass(store: Store, report: PassReport) -> None:
    """Store a pass as the heartbeat, keeping the newest :data:`KEPT_PASSES`."""
    steps = [{"name": s.name, "done": s.done, "problem": s.problem} for s in report.steps]
    with store.write() as connection:
        connection.execute(
            loop_passes.insert().values(
                holder=report.holder,
                started_at=report.started_at,
                finished_at=report.finished_at,
                interval_s=report.interval_s,
                steps=json.dumps(steps),
            )
        )
        newest = sa.select(loop_passes.c.id).order_by(loop_passes.c.id.desc()).limit(KEPT_PASSES)
        connection.execute(loop_passes.delete().where(loop_passes.c.id.not_in(newest)))


def recent_passes(store: Store, limit: int = 20) -> list[PassReport]:
    """The newest passes first."""
    query = sa.select(loop_passes).order_by(loop_passes.c.id.desc()).limit(limit)
    with store.read() as connection:
        rows = connection.execute(query).all()
    return [_report(row) for row in rows]


def loop_health(store: Store, now: datetime) -> LoopHealth:
    """How fresh the newest pass is at ``now``."""
    passes = recent_passes(store, limit=1)
    if not passes:
        return LoopHealth(None, late=True)
    last = passes[0]
    allowed = timedelta(seconds=LATE_AFTER_INTERVALS * last.interval_s + last.duration_s)
    return LoopHealth(last, late=now - last.finished_at > allowed)


def _report(row: sa.Row[tuple[object, ...]]) -> PassReport:
    try:
        steps: Sequence[dict[str, str]] = json.loads(row.steps)
        parsed = tuple(
            StepReport(str(s["name"]), str(s["done"]), str(s.get("problem", ""))) for s in steps
        )
    except (ValueError, TypeError, KeyError):
        parsed = (StepReport("pass", "", "this pass's report cannot be read"),)
    return PassReport(
        str(row.holder), aware(row.started_at), aware(row.finished_at), row.interval_s, parsed
    )
