"""One pass of the retraining scheduler: judge every model's policy, record it, start what fires.

Each decision is recorded once per cause (a batch, a schedule tick) in ``policy_decisions`` and
audited, including "would fire, but blocked by cooldown"; a fired decision submits a retraining as
the scheduler. ``python -m jobs.scheduler`` calls :func:`run_policies` on an interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from services.core.conventions import CHAMPION
from services.core.errors import FlightdeckError, NotFound
from services.core.store import aware, policy_decisions
from services.core.wiring import Wiring
from services.governance import audit
from services.governance.auth import POLICY_SOURCE, Identity
from services.governance.config import RetrainingPolicy
from services.governance.gates import primary_higher_is_better
from services.monitoring.runs import monitoring_runs
from services.retraining.base import Backend
from services.retraining.cron import CronSchedule
from services.retraining.engines import training_command
from services.retraining.jobs import list_jobs, submit_retraining
from services.retraining.policy import BLOCKED, DecayBaseline, PolicyDecision, decide

SCHEDULER = Identity("flightdeck-scheduler", True, role="operator", source=POLICY_SOURCE)
"""The identity automatic retrains run as: an operator, named as the system it is."""


def run_policies(
    services: Wiring,
    backend: Backend,
    env: dict[str, str],
    *,
    last_check: datetime,
    now: datetime | None = None,
) -> list[PolicyDecision]:
    """Judge every registered model's policy at ``now``; return the decisions made this pass.

    ``last_check`` is the previous pass: a schedule fires when one of its times falls between.
    A model that cannot be read is skipped this pass (the next one tries again).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    made: list[PolicyDecision] = []
    models = [m.name for m in services.registry.registered_models()]
    for model in models:
        policy = services.governance.retraining_for(model)
        if not policy.automatic:
            continue
        try:
            decision = judge(services, model, policy, last_check=last_check, now=now)
        except FlightdeckError:
            continue
        if decision is None or not _record(services, decision):
            continue
        if decision.fired:
            decision = _start(services, backend, env, decision, models)
        made.append(decision)
    return made


def judge(
    services: Wiring,
    model: str,
    policy: RetrainingPolicy,
    *,
    last_check: datetime,
    now: datetime,
) -> PolicyDecision | None:
    """The policy's decision for ``model`` now, from MLflow's drift history and the jobs."""
    batches = monitoring_runs(services.registry, model)
    retrains = [job.created_at for job in list_jobs(services.store, model)]
    schedule_fired = (
        CronSchedule.parse(policy.schedule).last_fire(last_check, now)
        if policy.schedule.strip()
        else None
    )
    return decide(
        policy,
        model,
        now,
        batches,
        retrains,
        services.governance.drift,
        schedule_fired=schedule_fired,
        baseline=decay_baseline(services, model, policy),
    )


def decay_baseline(services: Wiring, model: str, policy: RetrainingPolicy) -> DecayBaseline | None:
    """The champion's held-out score of the primary metric, when the decay trigger is on."""
    if not policy.decay_threshold:
        return None
    gates = services.governance.gates_for(model)
    try:
        holder = services.registry.alias_holder(model, CHAMPION)
        if holder is None:
            return None
        run_id = services.registry.get_model_version(model, holder).run_id
        score = services.registry.get_run(run_id).metrics.get(gates.primary_metric)
    except NotFound:
        return None
    if score is None:
        return None
    higher = primary_higher_is_better(gates)
    return DecayBaseline(gates.primary_metric, score, higher)


def recent_decisions(services: Wiring, limit: int = 100) -> list[PolicyDecision]:
    """Decisions the scheduler recorded, newest first."""
    with services.store.read() as connection:
        rows = connection.execute(
            sa.select(policy_decisions).order_by(policy_decisions.c.id.desc()).limit(limit)
        ).all()
    return [
        PolicyDecision(
            model=row.model,
            at=aware(row.decided_at),
            trigger=row.trigger,
            outcome=row.outcome,
            reason=row.reason,
            cause=row.cause,
        )
        for row in rows
    ]


def _record(services: Wiring, decision: PolicyDecision) -> bool:
    """Record and audit the decision; False when this cause was already decided."""
    try:
        with services.store.write() as connection:
            connection.execute(
                policy_decisions.insert().values(
                    model=decision.model,
                    trigger=decision.trigger,
                    cause=decision.cause,
                    outcome=decision.outcome,
                    reason=decision.reason,
                    decided_at=decision.at,
                )
            )
            audit.append(
                connection,
                actor=SCHEDULER.name,
                action=f"policy.{decision.outcome}",
                subject=audit.subject_for(decision.model),
                details={
                    "trigger": decision.trigger,
                    "reason": decision.reason,
                    "cause": decision.cause,
                },
                now=decision.at,
            )
    except IntegrityError:
        return False
    return True


def _start(
    services: Wiring,
    backend: Backend,
    env: dict[str, str],
    decision: PolicyDecision,
    models: Sequence[str],
) -> PolicyDecision:
    """Submit the retraining a fired decision asks for; a refusal turns it into a block."""
    try:
        job = submit_retraining(
            services.store,
            backend,
            SCHEDULER,
            model=decision.model,
            trigger=decision.trigger,
            params={"policy": decision.trigger, "reason": decision.reason},
            idempotency_key=f"policy:{decision.model}:{decision.trigger}:{decision.cause}",
            command_for=training_command(
                decision.model,
                decision.trigger,
                SCHEDULER.name,
                cause_run_id=decision.cause_run_id,
                policy=f"{decision.trigger} policy",
            ),
            known_models=models,
            env=env,
        )
    except FlightdeckError as exc:
        reason = f"{decision.reason}; blocked: {exc}"
        _update(services, decision, outcome=BLOCKED, reason=reason)
        return PolicyDecision(
            decision.model, decision.at, decision.trigger, BLOCKED, reason, decision.cause
        )
    _update(services, decision, job_id=job.job_id)
    return decision


def _update(services: Wiring, decision: PolicyDecision, **values: str) -> None:
    with services.store.write() as connection:
        connection.execute(
            policy_decisions.update()
            .where(
                policy_decisions.c.model == decision.model,
                policy_decisions.c.trigger == decision.trigger,
                policy_decisions.c.cause == decision.cause,
            )
            .values(**values)
        )
        if values.get("outcome") == BLOCKED:
            audit.append(
                connection,
                actor=SCHEDULER.name,
                action="policy.blocked",
                subject=audit.subject_for(decision.model),
                details={"trigger": decision.trigger, "reason": values["reason"]},
            )
