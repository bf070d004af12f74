"""Closing the loop: a finished retraining becomes a judged version and, if it passes, a request.

For each succeeded job not judged yet: find the version it registered (by its
``flightdeck.job_id`` tag), run the promotion gates against the current holder of the policy's
target alias (the training job already scored that champion on the same held-out rows), and when
every gate passes, open a promotion request in the requester's name. A person approves it, unless
the policy auto-approves a non-production alias. For a job that failed, was cancelled or was
lost, its MLflow run, if still RUNNING (a killed process cannot end it), is ended FAILED with the
reason. Either outcome is written on the job and audited.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import sqlalchemy as sa

from services.core import filters
from services.core.conventions import FAILURE_TAG, JOB_ID_TAG, PRODUCTION_TARGETS
from services.core.errors import FlightdeckError
from services.core.store import retraining_jobs
from services.core.wiring import Wiring
from services.governance import audit, promotion
from services.governance.auth import POLICY_SOURCE, Identity
from services.governance.config import RetrainingPolicy
from services.governance.gates import GateResult, evaluate_candidate
from services.retraining.base import FINISHED_STATES, SUCCEEDED, Backend
from services.retraining.jobs import SYSTEM_ACTOR, RetrainingJob, get_job, refresh_jobs

POLICY_APPROVER = "flightdeck-policy"
"""Who approves when a policy auto-approves a non-production alias."""


def follow_jobs(services: Wiring, backend: Backend) -> list[RetrainingJob]:
    """Record what the engine reports, then close every finished job not closed yet.

    Returns the jobs that changed. Safe to run from several processes: judging a job is
    idempotent (its request has a key derived from the job).
    """
    changed = {job.job_id: job for job in refresh_jobs(services.store, backend)}
    for job in unjudged_jobs(services):
        changed[job.job_id] = close_loop(services, job)
    return list(changed.values())


def unjudged_jobs(services: Wiring) -> list[RetrainingJob]:
    """Finished jobs whose outcome was not recorded yet."""
    with services.store.read() as connection:
        ids = (
            connection.execute(
                sa.select(retraining_jobs.c.id).where(
                    retraining_jobs.c.status.in_(FINISHED_STATES),
                    retraining_jobs.c.outcome.is_(None),
                )
            )
            .scalars()
            .all()
        )
    return [get_job(services.store, job_id) for job_id in ids]


def close_loop(services: Wiring, job: RetrainingJob) -> RetrainingJob:
    """Judge a succeeded job's version and propose it when the gates pass; end an unsuccessful
    job's run in MLflow.

    Failures to reach MLflow leave the job unjudged, so the next call tries again.
    """
    if job.status != SUCCEEDED:
        return _close_unsuccessful(services, job)
    policy = services.governance.retraining_for(job.model)
    try:
        version = _registered_version(services, job)
        if version is None:
            return _record(services, job, "The job registered no version: nothing to judge.")
        run_id = services.registry.get_model_version(job.model, version).run_id
        holder = promotion.current_holder(
            services.registry, job.model, services.governance.target, policy.promote_to
        )
        results = evaluate_candidate(services, job.model, version, holder)
    except FlightdeckError:
        return job
    failing = [g for g in results if not g.passed]
    if failing:
        outcome = f"Version {version} was not proposed: " + "; ".join(
            f"{g.name} failed ({g.detail})" for g in failing
        )
        return _record(services, job, outcome, version=version, run_id=run_id, gates=results)
    try:
        request = promotion.request_promotion(
            services,
            Identity(job.requested_by, authenticated=True, role="operator", source="retraining"),
            model=job.model,
            version=version,
            target=policy.promote_to,
            reason=_reason(job, results),
            rollback_plan=f"Roll back to version {holder}." if holder else "Remove the alias.",
            idempotency_key=f"retraining:{job.job_id}",
        )
    except FlightdeckError as exc:
        outcome = f"Version {version} passed the gates but was not proposed: {exc}"
        return _record(services, job, outcome, version=version, run_id=run_id, gates=results)
    outcome = (
        f"Version {version} passed the gates and was proposed for @{policy.promote_to} "
        f"(request {request.request_id[:8]})."
    )
    job = _record(
        services,
        job,
        outcome,
        version=version,
        run_id=run_id,
        gates=results,
        request_id=request.request_id,
    )
    if _may_auto_approve(policy):
        with contextlib.suppress(FlightdeckError):  # refused: the request waits for a person
            promotion.decide(
                services,
                Identity(POLICY_APPROVER, True, role="approver", source=POLICY_SOURCE),
                request.request_id,
                approve=True,
                comment=f"Auto-approved by the retraining policy for @{policy.promote_to}.",
            )
    return job


def _close_unsuccessful(services: Wiring, job: RetrainingJob) -> RetrainingJob:
    """End the job's MLflow run FAILED when the job's process could not (killed, lost)."""
    registry = services.registry
    try:
        experiments = [e.experiment_id for e in registry.list_experiments()]
        query = filters.tag_equals(JOB_ID_TAG, job.job_id) or ""
        found = registry.search_runs(experiments, query, max_results=5).runs
        runs = [run for run in found if run.tags.get(JOB_ID_TAG) == job.job_id]
        left_running = [run for run in runs if run.status == "RUNNING"]
        reason = f"Retraining job {job.job_id[:8]} {job.status}: " + (
            job.status_reason.split("\n")[0] or "no reason recorded"
        )
        for run in left_running:
            registry.set_run_tags(run.run_id, {FAILURE_TAG: reason})
            registry.end_run(run.run_id, "FAILED")
    except FlightdeckError:
        return job
    outcome = f"The job {job.status}; no version was registered." + (
        f" Its MLflow run {left_running[0].run_id[:8]} was left running and is now marked FAILED."
        if left_running
        else ""
    )
    return _record(services, job, outcome, run_id=runs[0].run_id if runs else None)


def _may_auto_approve(policy: RetrainingPolicy) -> bool:
    return policy.auto_approve and policy.promote_to not in PRODUCTION_TARGETS  # so does decide


def _registered_version(services: Wiring, job: RetrainingJob) -> int | None:
    if job.new_version is not None:
        return job.new_version
    versions = services.registry.versions_of(job.model)
    made = [v.version for v in versions if v.tags.get(JOB_ID_TAG) == job.job_id]
    return max(made, default=None)


def _reason(job: RetrainingJob, results: Sequence[GateResult]) -> str:
    figures = results[0].detail if results else ""
    return (
        f"Retrained by job {job.job_id[:8]} ({job.trigger}, requested by {job.requested_by}); "
        f"{results[0].name if results else 'gates'}: {figures}."
    )


def _record(
    services: Wiring,
    job: RetrainingJob,
    outcome: str,
    *,
    version: int | None = None,
    run_id: str | None = None,
    gates: Sequence[GateResult] = (),
    request_id: str | None = None,
) -> RetrainingJob:
    with services.store.write() as connection:
        updated = connection.execute(
            retraining_jobs.update()
            .where(retraining_jobs.c.id == job.job_id, retraining_jobs.c.outcome.is_(None))
            .values(
                outcome=outcome,
                new_version=version,
                mlflow_run_id=run_id or job.mlflow_run_id,
                promotion_request_id=request_id,
            )
        ).rowcount
        if updated:
            audit.append(
                connection,
                actor=SYSTEM_ACTOR,
                action="retraining.judged",
                subject=audit.subject_for(job.model),
                request_id=request_id,
                details={
                    "job_id": job.job_id,
                    "version": version,
                    "outcome": outcome,
                    "gates": [
                        {"name": g.name, "passed": g.passed, "detail": g.detail} for g in gates
                    ],
                },
            )
    return get_job(services.store, job.job_id)
