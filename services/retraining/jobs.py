"""Retraining jobs: submit, follow, cancel; every step in the application store and audit log.

A job moves through these statuses::

    queued --engine started it--> running --exit 0--> succeeded
       |                             |--non-zero exit--> failed
       |--engine refused--> failed   |--cancel--> cancelled
       '--gone at startup--> lost    '--gone without an exit code--> lost

At most one job per model is queued or running: the check runs inside the store's write lock,
so double clicks, other tabs and the scheduler start one job and the others are told it is
already running. The same idempotency key twice returns the first job.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core.errors import FlightdeckError, RetrainingError
from services.core.store import Store, aware, retraining_jobs
from services.governance import audit
from services.governance.auth import Action, Identity, require
from services.retraining.base import (
    ACTIVE_STATES,
    CANCELLED,
    FAILED,
    FINISHED_STATES,
    LOST,
    QUEUED,
    RUNNING,
    Backend,
    EngineStatus,
)

SYSTEM_ACTOR = "flightdeck"
"""The actor of status changes Flightdeck observes rather than a person causing them."""
LOG_TAIL_IN_REASON = 20
"""How many log lines a failed job's reason quotes."""


@dataclass(frozen=True, slots=True)
class RetrainingJob:
    """One retraining of a model, as recorded in the application store."""

    job_id: str
    """32-character hex id; also the local engine's job folder name."""
    model: str
    """Registered model name; untrusted text."""
    engine: str
    """The engine that runs it: ``local``, later ``prefect`` or ``airflow``."""
    engine_ref: str | None
    """The engine's reference to the run; None until the engine accepted it."""
    trigger: str
    """Why it started: ``manual``, ``schedule``, ``drift``, ..."""
    requested_by: str
    """Who (or which policy) asked; untrusted text."""
    params: Mapping[str, Any]
    """Training parameters as given; JSON-serialisable."""
    status: str
    """One of :data:`services.retraining.base.STATES`; see the module docstring."""
    exit_code: int | None
    """The command's exit code once it ended; negative for a signal; None if unknown."""
    created_at: datetime
    """When it was requested (aware, UTC)."""
    started_at: datetime | None
    """When the engine started it (aware, UTC)."""
    ended_at: datetime | None
    """When it ended (aware, UTC)."""
    status_reason: str
    """Why it failed, was lost or cancelled (with the log's last lines); empty otherwise."""
    mlflow_run_id: str | None
    """The MLflow run the training logged, once known."""
    new_version: int | None
    """The model version the training registered, once known."""
    idempotency_key: str
    """The key the request came with; the same key returns this job."""
    outcome: str | None = None
    """What became of the new version once judged (proposed, or why not); None until then."""
    promotion_request_id: str | None = None
    """The promotion request opened for the new version, if any."""

    @property
    def is_active(self) -> bool:
        """True while queued or running."""
        return self.status in ACTIVE_STATES


def submit_retraining(
    store: Store,
    backend: Backend,
    actor: Identity,
    *,
    model: str,
    trigger: str,
    params: Mapping[str, Any],
    idempotency_key: str,
    command_for: Callable[[str], Sequence[str]],
    known_models: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> RetrainingJob:
    """Record a retraining of ``model`` and start it on ``backend``.

    Args:
        store: The application store.
        backend: The engine that runs the job.
        actor: Who asks; must be an operator.
        model: The registered model to retrain.
        trigger: Why (``manual``, ``schedule``, ``drift``, ...).
        params: Training parameters; JSON-serialisable.
        idempotency_key: The same key twice returns the first job.
        command_for: Builds the command from the job id, e.g. ``python -m jobs.train ...``.
        known_models: When given, ``model`` must be one of them.
        env: Extra environment variables for the job (``FLIGHTDECK_JOB_ID`` is always set).
        now: The current time, for tests.

    Raises:
        PermissionDenied: ``actor`` is not an operator.
        RetrainingError: Invalid parameters, a job for the model is already queued or
            running, or the engine could not start it (the job is then recorded as failed).
        StoreError: The store could not be reached; nothing was started.
    """
    require(actor, Action.TRIGGER_RETRAINING)
    existing = _by_key(store, idempotency_key)
    if existing is not None:
        return existing
    _validate(model, trigger, known_models)
    try:
        params_text = json.dumps(dict(params), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise RetrainingError(f"The training parameters cannot be stored: {exc}.") from exc
    now = _now(now)
    job_id = uuid.uuid4().hex
    subject = audit.subject_for(model)
    with store.write() as connection:
        same_key = _row_by_key(connection, idempotency_key)
        if same_key is not None:
            return _job(same_key)
        active = connection.execute(
            sa.select(retraining_jobs.c.id).where(
                retraining_jobs.c.model == model, retraining_jobs.c.status.in_(ACTIVE_STATES)
            )
        ).first()
        if active is not None:
            raise RetrainingError(
                f"A retraining of {model} is already running (job {active.id[:8]}): wait for "
                "it to finish or cancel it."
            )
        connection.execute(
            retraining_jobs.insert().values(
                id=job_id,
                model=model,
                engine=backend.name,
                engine_ref=None,
                trigger=trigger,
                requested_by=actor.name,
                params=params_text,
                status=QUEUED,
                created_at=now,
                status_reason="",
                idempotency_key=idempotency_key,
            )
        )
        audit.append(
            connection,
            actor=actor.name,
            action="retraining.requested",
            subject=subject,
            details={
                "job_id": job_id,
                "engine": backend.name,
                "trigger": trigger,
                "params": json.loads(params_text),
            },
            now=now,
        )
    try:
        command = list(command_for(job_id))
        ref = backend.submit(job_id, command, {**(env or {}), "FLIGHTDECK_JOB_ID": job_id})
    except (FlightdeckError, OSError) as exc:
        reason = store.redactor.text(f"The {backend.name} engine could not start the job: {exc}")
        _set(
            store,
            job_id,
            actor.name,
            "retraining.failed",
            expect=(QUEUED,),
            status=FAILED,
            ended_at=_now(None),
            status_reason=reason,
        )
        raise RetrainingError(
            f"{reason} The job is recorded as failed; check the engine, then try again."
        ) from exc
    started = _set(
        store,
        job_id,
        actor.name,
        "retraining.started",
        expect=(QUEUED,),
        status=RUNNING,
        engine_ref=ref,
        started_at=_now(None),
        extra={"engine_ref": ref, "command": command},
    )
    if not started:  # cancelled while the engine was starting it: stop what it started
        _set(store, job_id, actor.name, "", engine_ref=ref)
        backend.cancel(ref)
    return get_job(store, job_id)


def refresh_jobs(store: Store, backend: Backend) -> list[RetrainingJob]:
    """Ask the engine about every active job of this engine and record what changed.

    Transitions to a finished state are audited. Returns the jobs that changed.
    """
    changed: list[RetrainingJob] = []
    for job in _active(store, backend.name):
        if job.engine_ref is None:
            continue
        updated = _apply(store, backend, job, backend.status(job.engine_ref))
        if updated is not None:
            changed.append(updated)
    return changed


def mark_lost_at_startup(store: Store, backend: Backend) -> list[RetrainingJob]:
    """At startup: record finished jobs' outcomes and mark as ``lost`` every active job the
    engine does not run (including ones recorded but never handed to the engine).

    Returns the jobs that changed.
    """
    changed: list[RetrainingJob] = []
    for job in _active(store, backend.name):
        if job.engine_ref is None:
            _set(
                store,
                job.job_id,
                SYSTEM_ACTOR,
                "retraining.lost",
                status=LOST,
                ended_at=_now(None),
                status_reason="Flightdeck stopped before the engine started the job.",
            )
            changed.append(get_job(store, job.job_id))
            continue
        updated = _apply(store, backend, job, backend.status(job.engine_ref))
        if updated is not None:
            changed.append(updated)
    return changed


def cancel_retraining(
    store: Store, backend: Backend, actor: Identity, job_id: str, reason: str = ""
) -> RetrainingJob:
    """Stop an active job; an operator may cancel any job.

    Raises:
        PermissionDenied: ``actor`` is not an operator.
        RetrainingError: No such job, it already finished, or the engine could not stop it.
    """
    require(actor, Action.TRIGGER_RETRAINING)
    job = get_job(store, job_id)
    if not job.is_active:
        raise RetrainingError(
            f"Job {job_id[:8]} of {job.model} is {job.status}: nothing to cancel."
        )
    subject = audit.subject_for(job.model)
    engine_ref = job.engine_ref
    try:
        with audit.audited_write(
            store,
            actor=actor.name,
            subject=subject,
            intent="retraining.cancel_requested",
            outcome=None,  # "retraining.cancelled" lands with the job's new status
            failure="retraining.cancel_failed",
            details={"job_id": job_id, "reason": reason.strip()},
            failures=(FlightdeckError, OSError),
        ):
            if engine_ref is not None:
                backend.cancel(engine_ref)
    except (FlightdeckError, OSError) as exc:
        raise RetrainingError(
            store.redactor.text(
                f"The {backend.name} engine could not cancel job {job_id[:8]}: {exc}"
            )
        ) from exc
    if engine_ref is not None:
        seen = backend.status(engine_ref)
        if seen.state in FINISHED_STATES and seen.state != CANCELLED:
            return _apply(store, backend, job, seen) or get_job(store, job_id)  # ended first
    else:
        seen = EngineStatus(CANCELLED)
    _set(
        store,
        job_id,
        actor.name,
        "retraining.cancelled",
        expect=ACTIVE_STATES,
        status=CANCELLED,
        exit_code=seen.exit_code,
        ended_at=seen.ended_at or _now(None),
        status_reason=f"Cancelled by {actor.name}"
        + (f": {reason.strip()}" if reason.strip() else "."),
    )
    return get_job(store, job_id)


def get_job(store: Store, job_id: str) -> RetrainingJob:
    """One job.

    Raises:
        RetrainingError: No job has this id.
    """
    with store.read() as connection:
        row = connection.execute(
            sa.select(retraining_jobs).where(retraining_jobs.c.id == job_id)
        ).first()
    if row is None:
        raise RetrainingError(f"No retraining job has the id {job_id!r}.")
    return _job(row)


def list_jobs(store: Store, model: str | None = None, limit: int = 200) -> list[RetrainingJob]:
    """Jobs, newest first, optionally of one model."""
    query = sa.select(retraining_jobs)
    if model is not None:
        query = query.where(retraining_jobs.c.model == model)
    query = query.order_by(retraining_jobs.c.created_at.desc()).limit(limit)
    with store.read() as connection:
        return [_job(row) for row in connection.execute(query).all()]


def jobs_started_between(store: Store, after: datetime, until: datetime) -> list[RetrainingJob]:
    """Jobs an engine started at or after ``after`` and before ``until``, oldest first."""
    query = (
        sa.select(retraining_jobs)
        .where(retraining_jobs.c.started_at >= after, retraining_jobs.c.started_at < until)
        .order_by(retraining_jobs.c.started_at)
    )
    with store.read() as connection:
        return [_job(row) for row in connection.execute(query).all()]


def job_log(backend: Backend, job: RetrainingJob, tail: int = 200) -> str:
    """The last ``tail`` lines of the job's output; empty before the engine started it."""
    return backend.logs(job.engine_ref, tail) if job.engine_ref else ""


# -- helpers -------------------------------------------------------------------------------------


def _validate(model: str, trigger: str, known_models: Sequence[str] | None) -> None:
    if not model.strip():
        raise RetrainingError("Pick a model to retrain.")
    if known_models is not None and model not in known_models:
        raise RetrainingError(
            f"{model!r} is not a registered model here; pick one of: "
            f"{', '.join(known_models) or 'none registered yet'}."
        )
    if not trigger.strip():
        raise RetrainingError("Say what triggered the retraining (e.g. manual).")


def _apply(
    store: Store, backend: Backend, job: RetrainingJob, seen: EngineStatus
) -> RetrainingJob | None:
    """Record what the engine reported, if it differs; None when nothing changed."""
    if seen.state == job.status or (seen.state == QUEUED and job.status == RUNNING):
        return None  # a remote engine may report a submitted run as queued until a worker starts it
    values: dict[str, Any] = {"status": seen.state}
    if seen.exit_code is not None:
        values["exit_code"] = seen.exit_code
    if seen.started_at is not None and job.started_at is None:
        values["started_at"] = seen.started_at
    if seen.state in FINISHED_STATES:
        values["ended_at"] = seen.ended_at or _now(None)
        values["status_reason"] = _reason(backend, job, seen)
    action = f"retraining.{seen.state}" if seen.state in FINISHED_STATES else ""
    _set(store, job.job_id, SYSTEM_ACTOR, action, expect=(job.status,), **values)
    return get_job(store, job.job_id)


def _reason(backend: Backend, job: RetrainingJob, seen: EngineStatus) -> str:
    if seen.state == FAILED:
        head = f"Exited with code {seen.exit_code}."
    elif seen.state == LOST:
        head = "The job's process is gone and left no exit code (killed, or the machine restarted)."
    elif seen.state == CANCELLED:
        head = "Cancelled."
    else:
        return ""
    tail = job_log(backend, job, LOG_TAIL_IN_REASON).strip()
    return f"{head} Last log lines:\n{tail}" if tail else head


def _set(
    store: Store,
    job_id: str,
    actor: str,
    action: str,
    *,
    expect: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    **values: Any,
) -> bool:
    """Update a job and, when ``action`` is given, audit it in the same transaction; True
    when the job changed.

    With ``expect``, only a job still in one of those statuses changes (another refresh or a
    cancel may have got there first). A ``status_reason`` (engine errors, log lines) is redacted
    of credentials before it is stored; the audit details are redacted by ``audit.append``.
    """
    if "status_reason" in values:
        values["status_reason"] = store.redactor.text(values["status_reason"])
    with store.write() as connection:
        query = retraining_jobs.update().where(retraining_jobs.c.id == job_id)
        if expect:
            query = query.where(retraining_jobs.c.status.in_(expect))
        if not connection.execute(query.values(**values)).rowcount:
            return False
        if not action:
            return True
        model = connection.execute(
            sa.select(retraining_jobs.c.model).where(retraining_jobs.c.id == job_id)
        ).scalar_one()
        details: dict[str, Any] = {"job_id": job_id, **(extra or {})}
        for key in ("status", "exit_code", "status_reason"):
            if key in values:
                details[key] = values[key]
        audit.append(
            connection,
            actor=actor,
            action=action,
            subject=audit.subject_for(model),
            details=details,
        )
    return True


def _active(store: Store, engine: str) -> list[RetrainingJob]:
    with store.read() as connection:
        rows = connection.execute(
            sa.select(retraining_jobs).where(
                retraining_jobs.c.engine == engine, retraining_jobs.c.status.in_(ACTIVE_STATES)
            )
        ).all()
    return [_job(row) for row in rows]


def _by_key(store: Store, key: str) -> RetrainingJob | None:
    with store.read() as connection:
        row = _row_by_key(connection, key)
    return _job(row) if row is not None else None


def _row_by_key(connection: Connection, key: str) -> Any:
    return connection.execute(
        sa.select(retraining_jobs).where(retraining_jobs.c.idempotency_key == key)
    ).first()


def _job(row: Any) -> RetrainingJob:
    return RetrainingJob(
        job_id=row.id,
        model=row.model,
        engine=row.engine,
        engine_ref=row.engine_ref,
        trigger=row.trigger,
        requested_by=row.requested_by,
        params=json.loads(row.params),
        status=row.status,
        exit_code=row.exit_code,
        created_at=aware(row.created_at),
        started_at=aware(row.started_at) if row.started_at else None,
        ended_at=aware(row.ended_at) if row.ended_at else None,
        status_reason=row.status_reason or "",
        mlflow_run_id=row.mlflow_run_id,
        new_version=row.new_version,
        idempotency_key=row.idempotency_key,
        outcome=row.outcome,
        promotion_request_id=row.promotion_request_id,
    )


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)
