"""Governed promotion: request, decide (four-eyes, gates), execute with compare-and-set, roll back.

A request moves through these statuses::

    pending --approve (enough approvals)--> executing --alias moved--> executed
       |                                        |--alias moved meanwhile--> stale
       |                                        '--MLflow failed--> failed --retry--> executing
       |--reject--> rejected     |--not decided in time--> expired (pending or failed)
       '--cancel--> cancelled (pending or failed)

Every function here that writes follows the same steps: check the permission, record the
intent in the audit log, act (MLflow), record the outcome. Executing is claimed with a
conditional status change inside the store's write lock, so double clicks, two tabs or twenty
approvers at once move the alias exactly once; the outcome is recorded only by whoever still
finds the request executing.

A process can die between any two of those steps. :func:`reconcile` (run by the control loop
at start-up and on every pass) resolves each request left ``executing`` for longer than an MLflow
call can take, by reading where the target points now; :func:`retry` after an ambiguous failure
(a timeout after the server applied the move) finds the move done and finishes the request.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from services.core.conventions import (
    CHALLENGER,
    CHAMPION,
    LEGACY_STAGES,
    PRODUCTION_TARGETS,
    TAG_APPROVED_BY,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_TO,
    TAG_REQUEST_ID,
    TAG_REQUESTED_BY,
)
from services.core.errors import (
    FlightdeckError,
    NotFound,
    PermissionDenied,
    PromotionConflict,
    PromotionError,
)
from services.core.store import Store, audit_events, aware, promotion_decisions, promotion_requests
from services.core.wiring import Wiring
from services.governance import audit, model_card
from services.governance.auth import POLICY_SOURCE, Action, Identity, person_key, require
from services.governance.config import Governance
from services.governance.gates import evaluate_gates
from services.governance.requests import (
    CANCELLED,
    EXECUTED,
    EXECUTING,
    EXPIRED,
    FAILED,
    OPEN_STATUSES,
    PENDING,
    PROMOTION,
    REJECTED,
    ROLLBACK,
    STALE,
    UNDECIDED_STATUSES,
    Decision,
    PromotionRequest,
    Registry,
)

RECONCILER = "flightdeck"
"""The audit actor of outcomes Flightdeck recovers from MLflow after an interruption."""
EVIDENCE_WRITTEN, EVIDENCE_FAILED = "model_card.logged", "model_card.failed"
"""The audit actions that close an executed request: its mirror tags and model card."""
EVIDENCE_CATCH_UP = timedelta(days=7)
"""How far back :func:`reconcile` looks for executed requests whose evidence is missing."""


# -- request ------------------------------------------------------------------------------------


def request_promotion(
    services: Wiring,
    actor: Identity,
    *,
    model: str,
    version: int,
    target: str,
    reason: str,
    rollback_plan: str,
    idempotency_key: str,
    kind: str = PROMOTION,
    now: datetime | None = None,
) -> PromotionRequest:
    """Open a request to point ``target`` of ``model`` at ``version``.

    The same ``idempotency_key`` twice returns the first request instead of a second one.

    Raises:
        PermissionDenied: ``actor`` is not an operator.
        PromotionError: A blank reason, an unknown stage, the version already holds the
            target, an open request for the same target, or the version was deleted.
        StoreError, TrackingError: The store or MLflow could not be reached; nothing changed.
    """
    require(actor, Action.REQUEST_PROMOTION)
    existing = _by_idempotency_key(services.store, idempotency_key)
    if existing is not None:
        return existing
    target_kind = services.governance.target
    if not reason.strip():
        raise PromotionError("Give a reason: approvers and the audit log need it.")
    if target_kind == "stage" and target not in LEGACY_STAGES:
        raise PromotionError(f"{target!r} is not a stage; stages are {', '.join(LEGACY_STAGES)}.")
    try:
        services.registry.get_model_version(model, version)
    except NotFound as exc:
        raise PromotionError(
            f"Version {version} of {model!r} does not exist (it may have been deleted): "
            "pick another version."
        ) from exc
    holder = current_holder(services.registry, model, target_kind, target)
    if holder == version:
        raise PromotionError(f"Version {version} already holds {target}: nothing to promote.")
    now = _now(now)
    request_id = uuid.uuid4().hex
    row = {
        "id": request_id,
        "kind": kind,
        "model": model,
        "version": version,
        "target_kind": target_kind,
        "target": target,
        "expected_holder": holder,
        "reason": reason.strip(),
        "rollback_plan": rollback_plan.strip(),
        "requested_by": actor.name,
        "requested_at": now,
        "expires_at": now + timedelta(hours=services.governance.request_ttl_hours),
        "status": PENDING,
        "status_reason": "",
        "updated_at": now,
        "idempotency_key": idempotency_key,
    }
    try:
        with services.store.write() as connection:
            _expire_overdue(connection, now)
            if _id_for_key(connection, idempotency_key) is not None:
                raise _AlreadyRequested
            clash = connection.execute(
                sa.select(promotion_requests.c.id).where(
                    promotion_requests.c.model == model,
                    promotion_requests.c.target == target,
                    promotion_requests.c.status.in_(OPEN_STATUSES),
                )
            ).first()
            if clash is not None:
                raise PromotionError(
                    f"Request {clash.id[:8]} for {target} of {model!r} is still open: decide or "
                    "cancel it first."
                )
            connection.execute(promotion_requests.insert().values(**row))
            audit.append(
                connection,
                actor=actor.name,
                action=f"{kind}.requested",
                subject=audit.subject_for(model, target_kind, target),
                request_id=request_id,
                details={
                    "version": version,
                    "expected_holder": holder,
                    "reason": row["reason"],
                    "rollback_plan": row["rollback_plan"],
                },
                now=now,
            )
    except (_AlreadyRequested, IntegrityError):  # the same key from another tab, just before
        again = _by_idempotency_key(services.store, idempotency_key)
        if again is None:
            raise
        return again
    request = get_request(services.store, request_id)
    _notify(services, "requested", request, actor.name)
    return request


def current_holder(registry: Registry, model: str, target_kind: str, target: str) -> int | None:
    """The version holding an alias, or the newest version in a stage; None when none does."""
    if target_kind == "alias":
        return registry.alias_holder(model, target)
    in_stage = [v.version for v in registry.versions_of(model) if v.stage == target]
    return max(in_stage, default=None)


def target_choices(governance: Governance, model_aliases: Sequence[str], model: str) -> list[str]:
    """The targets a request for ``model`` may name: with legacy stages, the stages; else the
    conventional aliases, every alias the model has, and its retraining policies' aliases."""
    if governance.target == "stage":
        return list(LEGACY_STAGES)
    policies = (governance.default_retraining, governance.retraining_for(model))
    return list(
        dict.fromkeys([CHAMPION, CHALLENGER, *model_aliases, *(p.promote_to for p in policies)])
    )


# -- decide --------------------------------------------------------------------------------------


def decide(
    services: Wiring,
    actor: Identity,
    request_id: str,
    *,
    approve: bool,
    comment: str,
    override_reason: str = "",
    now: datetime | None = None,
) -> PromotionRequest:
    """Approve or reject a request; the approval that completes it also executes it.

    Raises:
        PermissionDenied: ``actor`` is not an approver, is the requester (four-eyes), or
            overrides a failing gate without being an admin.
        PromotionConflict: The request was already decided, expired, or moved on.
        PromotionError: A gate fails and there is no override; a blank comment on a rejection.
    """
    require(actor, Action.DECIDE_PROMOTION)
    request = get_request(services.store, request_id)
    if person_key(actor.name) == person_key(request.requested_by):
        raise PermissionDenied(
            f"{actor.name} requested this promotion and cannot decide it: another approver must "
            "(four-eyes)."
        )
    if actor.source == POLICY_SOURCE and approve and request.target in PRODUCTION_TARGETS:
        raise PermissionDenied(
            f"A retraining policy cannot approve a move into {request.target}: production "
            "always needs a person's approval."
        )
    if not approve and not comment.strip():
        raise PromotionError("Say why you reject the request: the requester needs to know.")
    override = override_reason.strip()
    if approve:
        failing = [g for g in evaluate_gates(services, request) if not g.passed]
        if failing and not override:
            raise PromotionError(
                "Failing gates block approval: "
                + "; ".join(f"{g.name} ({g.detail})" for g in failing)
                + ". An admin may override them with a reason."
            )
        if failing:
            require(actor, Action.OVERRIDE_GATE)
    now = _now(now)
    claimed = False
    subject = audit.subject_for(request.model, request.target_kind, request.target)
    with services.store.write() as connection:
        _expire_overdue(connection, now)  # committed even when this decision is refused
    with services.store.write() as connection:
        status = _status(connection, request_id)
        if status != PENDING:
            raise PromotionConflict(
                f"Request {request_id[:8]} is {status}, so it can no longer be decided."
            )
        try:
            with connection.begin_nested():
                connection.execute(
                    promotion_decisions.insert().values(
                        request_id=request_id,
                        decided_by=person_key(actor.name),
                        decision="approve" if approve else "reject",
                        comment=comment.strip(),
                        decided_at=now,
                    )
                )
        except IntegrityError as exc:
            raise PromotionConflict(f"{actor.name} has already decided this request.") from exc
        audit.append(
            connection,
            actor=actor.name,
            action="promotion.approved" if approve else "promotion.rejected",
            subject=subject,
            request_id=request_id,
            details={"comment": comment.strip(), "override_reason": override or None},
            now=now,
        )
        if override:
            _update(connection, request_id, now, override_by=actor.name, override_reason=override)
        if not approve:
            _update(connection, request_id, now, status=REJECTED, status_reason=comment.strip())
        elif _approvals(connection, request_id) >= services.governance.approvals_required:
            claimed = _claim(connection, request_id, PENDING, actor.name, subject, now)
    decided = get_request(services.store, request_id)
    _notify(services, "approved" if approve else "rejected", decided, actor.name)
    if claimed:
        return _execute(services, actor.name, decided)
    return decided


# -- execute -------------------------------------------------------------------------------------


def retry(
    services: Wiring, actor: Identity, request_id: str, *, now: datetime | None = None
) -> PromotionRequest:
    """Execute a request whose MLflow call failed, once more.

    The gates are checked again (an admin's override or direct execution still stands), and an
    expired request is not retried. When the target already points at the requested version
    (the failed call reached MLflow after all), the request is finished as executed.

    Raises:
        PermissionDenied: ``actor`` is not an approver.
        PromotionConflict: The request is not in the ``failed`` status, or has expired.
        PromotionError: A gate fails now.
    """
    require(actor, Action.DECIDE_PROMOTION)
    request = get_request(services.store, request_id)
    if request.override_by is None:
        failing = [g for g in evaluate_gates(services, request) if not g.passed]
        if failing:
            raise PromotionError(
                "Failing gates block the retry: "
                + "; ".join(f"{g.name} ({g.detail})" for g in failing)
                + ". Cancel this request and open a new one."
            )
    now = _now(now)
    subject = audit.subject_for(request.model, request.target_kind, request.target)
    with services.store.write() as connection:
        _expire_overdue(connection, now)
    with services.store.write() as connection:
        if not _claim(connection, request_id, FAILED, actor.name, subject, now):
            raise PromotionConflict(
                f"Request {request_id[:8]} is {_status(connection, request_id)}, not failed."
            )
    return _execute(services, actor.name, get_request(services.store, request_id), resuming=True)


def execute_directly(
    services: Wiring,
    actor: Identity,
    *,
    model: str,
    version: int,
    target: str,
    reason: str,
    idempotency_key: str,
    now: datetime | None = None,
) -> PromotionRequest:
    """An admin's rollback (or urgent move) without approval; still audited, still CAS.

    Raises:
        PermissionDenied: ``actor`` is not an admin.
        PromotionError: No reason, or the version does not exist.
    """
    require(actor, Action.EXECUTE_DIRECTLY)
    if not reason.strip():
        raise PromotionError("Give a reason: moving an alias without approval must say why.")
    request = request_promotion(
        services,
        actor,
        model=model,
        version=version,
        target=target,
        reason=reason,
        rollback_plan="Executed directly by an admin.",
        idempotency_key=idempotency_key,
        kind=ROLLBACK,
        now=now,
    )
    subject = audit.subject_for(model, request.target_kind, target)
    with services.store.write() as connection:
        _update(
            connection,
            request.request_id,
            _now(now),
            override_by=actor.name,
            override_reason=reason.strip(),
        )
        claimed = _claim(connection, request.request_id, PENDING, actor.name, subject, _now(now))
    if not claimed:
        return get_request(services.store, request.request_id)
    return _execute(services, actor.name, get_request(services.store, request.request_id))


def cancel(services: Wiring, actor: Identity, request_id: str, reason: str) -> PromotionRequest:
    """Withdraw a pending or failed request: its requester, or an admin.

    Raises:
        PermissionDenied: Someone else's request, and ``actor`` is not an admin.
        PromotionConflict: The request is no longer pending or failed.
    """
    request = get_request(services.store, request_id)
    if person_key(actor.name) != person_key(request.requested_by):
        require(actor, Action.ADMINISTER)
    require(actor, Action.REQUEST_PROMOTION)
    now = _now(None)
    with services.store.write() as connection:
        changed = connection.execute(
            promotion_requests.update()
            .where(
                promotion_requests.c.id == request_id,
                promotion_requests.c.status.in_(UNDECIDED_STATUSES),
            )
            .values(status=CANCELLED, status_reason=reason.strip(), updated_at=now)
        ).rowcount
        if not changed:
            raise PromotionConflict(f"Request {request_id[:8]} is no longer pending or failed.")
        audit.append(
            connection,
            actor=actor.name,
            action="promotion.cancelled",
            subject=audit.subject_for(request.model, request.target_kind, request.target),
            request_id=request_id,
            details={"reason": reason.strip()},
            now=now,
        )
    return get_request(services.store, request_id)


def _execute(
    services: Wiring, actor: str, request: PromotionRequest, *, resuming: bool = False
) -> PromotionRequest:
    """Compare-and-set: move the target only if it still points where the request expected.

    The caller has claimed the request (status ``executing``, intent in the audit log). When
    ``resuming`` an earlier attempt, a target already on the requested version means that
    attempt reached MLflow: the request is finished as executed, not as stale.
    """
    registry = services.registry
    try:
        holder = current_holder(registry, request.model, request.target_kind, request.target)
        if resuming and holder == request.version:
            return _complete(services, request, actor, recovered=True)[0]
        if holder != request.expected_holder:
            reason = (
                f"{request.target} now points at {_version_text(holder)}, not "
                f"{_version_text(request.expected_holder)} as when the request was made: "
                "someone moved it meanwhile. Open a new request."
            )
            _finish(services, request, actor, STALE, "promotion.conflict", reason, holder)
            raise PromotionConflict(reason)
        if request.target_kind == "alias":
            registry.set_alias(request.model, request.target, request.version)
        else:
            registry.set_stage(request.model, request.version, request.target)
    except FlightdeckError as exc:
        if isinstance(exc, PromotionConflict):
            raise
        _finish(services, request, actor, FAILED, "promotion.failed", str(exc), None)
        raise PromotionError(
            f"MLflow did not confirm the move of {request.target}: {exc} The request is marked "
            "failed and can be retried; a retry finds a move that reached MLflow and finishes."
        ) from exc
    return _complete(services, request, actor)[0]


def _complete(
    services: Wiring, request: PromotionRequest, actor: str, *, recovered: bool = False
) -> tuple[PromotionRequest, bool]:
    """Record the move, then write its evidence (mirror tags, model card) and notify; the
    request, and False when another process had recorded an outcome first.

    The evidence comes after the outcome so that the request leaves ``executing`` as soon as
    MLflow moved the target; :func:`reconcile` writes evidence a crash left unwritten.
    """
    note = (
        f"Recovered: {request.target} already pointed at version {request.version}, so the "
        "interrupted move had reached MLflow."
        if recovered
        else ""
    )
    executed, recorded = _finish(
        services,
        request,
        actor,
        EXECUTED,
        "alias.moved",
        note,
        request.expected_holder,
        recovered=recovered,
    )
    if recorded:
        _write_evidence(services, executed, actor)
        _notify(services, "executed", executed, actor)
    return executed, recorded


def _write_evidence(services: Wiring, request: PromotionRequest, actor: str) -> None:
    """Mirror the decision in tags on the version and log the model card on its run, audited
    as one ``evidence.*`` event; a failure is audited, not raised (the alias has moved)."""

    subject = audit.subject_for(request.model, request.target_kind, request.target)
    details: dict[str, Any] = {}
    try:
        services.registry.set_model_version_tags(
            request.model, request.version, _mirror_tags(request)
        )
        card = model_card.build_card(services, request, evaluate_gates(services, request))
        run_id = services.registry.get_model_version(request.model, request.version).run_id
        services.registry.log_artifact_text(
            run_id, model_card.MARKDOWN_PATH, model_card.to_markdown(card)
        )
        services.registry.log_artifact_text(run_id, model_card.HTML_PATH, model_card.to_html(card))
        action = EVIDENCE_WRITTEN
        details = {"run_id": run_id, "paths": [model_card.MARKDOWN_PATH, model_card.HTML_PATH]}
    except FlightdeckError as exc:
        action, details = EVIDENCE_FAILED, {"reason": str(exc)}
    with services.store.write() as connection:
        if request.request_id not in _without_evidence(connection, _now(None)):
            return  # a concurrent reconciler recorded it first
        audit.append(
            connection,
            actor=actor,
            action=action,
            subject=subject,
            request_id=request.request_id,
            details=details,
        )


def _finish(
    services: Wiring,
    request: PromotionRequest,
    actor: str,
    status: str,
    action: str,
    reason: str,
    holder: int | None,
    *,
    recovered: bool = False,
) -> tuple[PromotionRequest, bool]:
    """Record the outcome of an execution if the request is still ``executing``; the request as
    it is afterwards, and False when another process had recorded an outcome first."""
    now = _now(None)
    with services.store.write() as connection:
        changed = connection.execute(
            promotion_requests.update()
            .where(
                promotion_requests.c.id == request.request_id,
                promotion_requests.c.status == EXECUTING,
            )
            .values(status=status, status_reason=reason, updated_at=now)
        ).rowcount
        if changed:
            audit.append(
                connection,
                actor=actor,
                action=action,
                subject=audit.subject_for(request.model, request.target_kind, request.target),
                request_id=request.request_id,
                details={
                    "version": request.version if status == EXECUTED else holder,
                    "previous": holder if status == EXECUTED else request.expected_holder,
                    "requested_version": request.version,
                    "reason": reason or request.reason,
                    "requested_by": request.requested_by,
                    "approved_by": list(request.approvers),
                    **({"recovered": True} if recovered else {}),
                },
                now=now,
            )
    return get_request(services.store, request.request_id), bool(changed)


# -- reconcile -----------------------------------------------------------------------------------

EXECUTION_CALLS = 2
"""MLflow calls between claiming a request and recording its outcome: read the holder, move."""


def stuck_after(mlflow_call_limit_s: float) -> timedelta:
    """How long a request may stay ``executing`` before :func:`reconcile` decides it was
    interrupted: longer than its MLflow calls can take (see ``Settings.mlflow_call_limit_s``)."""
    return timedelta(seconds=EXECUTION_CALLS * mlflow_call_limit_s + 1)


def reconcile(
    services: Wiring, *, stuck_after: timedelta, now: datetime | None = None
) -> list[PromotionRequest]:
    """Resolve what interrupted executions left behind; the requests this call changed.

    For each request ``executing`` since longer than ``stuck_after`` (longer than its MLflow
    calls can take, so no live process still works on it), MLflow decides:

    - the target points at the requested version: ``executed``, audited as recovered, with its
      mirror tags and model card written;
    - it still points at the expected holder: ``failed``, so an approver can retry;
    - anything else: ``stale``, naming the holder.

    Executed requests whose evidence was never recorded get it now, and overdue requests expire.
    A request whose target cannot be read is left for the next call.
    """
    now = _now(now)
    with services.store.write() as connection:
        _expire_overdue(connection, now)
    with services.store.read() as connection:
        stuck = connection.execute(
            sa.select(promotion_requests.c.id).where(
                promotion_requests.c.status == EXECUTING,
                promotion_requests.c.updated_at < now - stuck_after,
            )
        ).all()
        unevidenced = _without_evidence(connection, now)
    resolved: list[PromotionRequest] = []
    for row in stuck:
        request = get_request(services.store, row.id)
        try:
            holder = current_holder(
                services.registry, request.model, request.target_kind, request.target
            )
        except FlightdeckError:
            continue
        if holder == request.version:
            done, recorded = _complete(services, request, RECONCILER, recovered=True)
        elif holder == request.expected_holder:
            reason = (
                f"Interrupted before MLflow moved {request.target}: it still points at "
                f"{_version_text(holder)}. Retry to move it."
            )
            done, recorded = _finish(
                services, request, RECONCILER, FAILED, "promotion.failed", reason, None
            )
        else:
            reason = (
                f"Interrupted, and {request.target} now points at {_version_text(holder)}, "
                f"neither {_version_text(request.expected_holder)} nor the requested version: "
                "someone moved it meanwhile. Open a new request."
            )
            done, recorded = _finish(
                services, request, RECONCILER, STALE, "promotion.conflict", reason, holder
            )
        if recorded:
            resolved.append(done)
    for request_id in unevidenced:
        _write_evidence(services, get_request(services.store, request_id), RECONCILER)
    return resolved


def _without_evidence(connection: Connection, now: datetime) -> list[str]:
    """Recently executed requests with no evidence event: a crash came between the move's
    outcome and its mirror tags and model card."""
    evidenced = sa.select(audit_events.c.request_id).where(
        audit_events.c.action.in_((EVIDENCE_WRITTEN, EVIDENCE_FAILED)),
        audit_events.c.request_id.is_not(None),
    )
    return list(
        connection.execute(
            sa.select(promotion_requests.c.id).where(
                promotion_requests.c.status == EXECUTED,
                promotion_requests.c.updated_at > now - EVIDENCE_CATCH_UP,
                promotion_requests.c.id.not_in(evidenced),
            )
        ).scalars()
    )


def _claim(
    connection: Connection,
    request_id: str,
    from_status: str,
    actor: str,
    subject: str,
    now: datetime,
) -> bool:
    """Move the request to ``executing`` if it is still ``from_status``; True for the winner."""
    changed = connection.execute(
        promotion_requests.update()
        .where(promotion_requests.c.id == request_id, promotion_requests.c.status == from_status)
        .values(status=EXECUTING, status_reason="", updated_at=now)
    ).rowcount
    if changed:
        audit.append(
            connection,
            actor=actor,
            action="promotion.executing",
            subject=subject,
            request_id=request_id,
            details={"from": from_status},
            now=now,
        )
    return bool(changed)


# -- reads ---------------------------------------------------------------------------------------


def get_request(store: Store, request_id: str, now: datetime | None = None) -> PromotionRequest:
    """One request with its decisions, as of ``now`` (see :func:`list_requests`).

    Raises:
        PromotionError: No request has this id.
    """
    with store.read() as connection:
        row = connection.execute(
            sa.select(promotion_requests).where(promotion_requests.c.id == request_id)
        ).first()
        if row is None:
            raise PromotionError(f"No promotion request has the id {request_id!r}.")
        request = _request(row, _decisions(connection, [request_id]).get(request_id, ()))
    return _as_of(request, _now(now))


def list_requests(
    store: Store,
    *,
    model: str | None = None,
    statuses: Sequence[str] = (),
    limit: int = 200,
    now: datetime | None = None,
) -> list[PromotionRequest]:
    """Requests, open ones first, then newest first, as of ``now``.

    A read only: an undecided request past its expiry reads as expired, and the control loop
    (:func:`reconcile`) records the expiry on its next pass.
    """
    query = sa.select(promotion_requests)
    if model is not None:
        query = query.where(promotion_requests.c.model == model)
    if statuses:
        query = query.where(promotion_requests.c.status.in_(statuses))
    query = query.order_by(promotion_requests.c.requested_at.desc()).limit(limit)
    with store.read() as connection:
        rows = connection.execute(query).all()
        decisions = _decisions(connection, [r.id for r in rows])
    moment = _now(now)
    requests_ = [_as_of(_request(r, decisions.get(r.id, ())), moment) for r in rows]
    return sorted(requests_, key=lambda r: not r.is_open)


def _as_of(request: PromotionRequest, now: datetime) -> PromotionRequest:
    """``request`` as it stands at ``now``: expired when undecided past its expiry."""
    if request.status in UNDECIDED_STATUSES and request.expires_at < now:
        return replace(request, status=EXPIRED, status_reason=_expiry_reason(request.status))
    return request


# -- helpers -------------------------------------------------------------------------------------


def _mirror_tags(request: PromotionRequest) -> dict[str, str]:
    return {
        TAG_REQUEST_ID: request.request_id,
        TAG_REQUESTED_BY: request.requested_by,
        TAG_APPROVED_BY: ", ".join(request.approvers) or (request.override_by or ""),
        TAG_PROMOTED_AT: (request.updated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        TAG_PROMOTED_TO: request.target,
    }


def _notify(services: Wiring, event: str, request: PromotionRequest, actor: str) -> None:
    services.notifier.promotion_step(event, request, actor)


class _AlreadyRequested(Exception):
    """Another tab made the request with this idempotency key while this one checked."""


def _by_idempotency_key(store: Store, key: str) -> PromotionRequest | None:
    with store.read() as connection:
        request_id = _id_for_key(connection, key)
    return get_request(store, request_id) if request_id else None


def _id_for_key(connection: Connection, key: str) -> str | None:
    return connection.execute(
        sa.select(promotion_requests.c.id).where(promotion_requests.c.idempotency_key == key)
    ).scalar_one_or_none()


def _expire_overdue(connection: Connection, now: datetime) -> None:
    overdue = connection.execute(
        sa.select(promotion_requests).where(
            promotion_requests.c.status.in_(UNDECIDED_STATUSES),
            promotion_requests.c.expires_at < now,
        )
    ).all()
    for row in overdue:
        _update(connection, row.id, now, status=EXPIRED, status_reason=_expiry_reason(row.status))
        audit.append(
            connection,
            actor="flightdeck",
            action="promotion.expired",
            subject=audit.subject_for(row.model, row.target_kind, row.target),
            request_id=row.id,
            details={"expires_at": aware(row.expires_at).isoformat()},
            now=now,
        )


def _expiry_reason(status: str) -> str:
    return "not decided in time" if status == PENDING else "not retried in time"


def _status(connection: Connection, request_id: str) -> str:
    status = connection.execute(
        sa.select(promotion_requests.c.status).where(promotion_requests.c.id == request_id)
    ).scalar_one_or_none()
    if status is None:
        raise PromotionError(f"No promotion request has the id {request_id!r}.")
    return str(status)


def _approvals(connection: Connection, request_id: str) -> int:
    return int(
        connection.execute(
            sa.select(sa.func.count()).where(
                promotion_decisions.c.request_id == request_id,
                promotion_decisions.c.decision == "approve",
            )
        ).scalar_one()
    )


def _update(connection: Connection, request_id: str, now: datetime, **values: Any) -> None:
    connection.execute(
        promotion_requests.update()
        .where(promotion_requests.c.id == request_id)
        .values(updated_at=now, **values)
    )


def _decisions(
    connection: Connection, request_ids: Sequence[str]
) -> dict[str, tuple[Decision, ...]]:
    if not request_ids:
        return {}
    rows = connection.execute(
        sa.select(promotion_decisions)
        .where(promotion_decisions.c.request_id.in_(list(request_ids)))
        .order_by(promotion_decisions.c.id)
    ).all()
    found: dict[str, list[Decision]] = {}
    for row in rows:
        found.setdefault(row.request_id, []).append(
            Decision(row.decided_by, row.decision == "approve", row.comment, aware(row.decided_at))
        )
    return {key: tuple(value) for key, value in found.items()}


def _request(row: Any, decisions: Sequence[Decision]) -> PromotionRequest:
    return PromotionRequest(
        request_id=row.id,
        kind=row.kind,
        model=row.model,
        version=row.version,
        target_kind=row.target_kind,
        target=row.target,
        expected_holder=row.expected_holder,
        reason=row.reason,
        rollback_plan=row.rollback_plan,
        requested_by=row.requested_by,
        requested_at=aware(row.requested_at),
        expires_at=aware(row.expires_at),
        status=row.status,
        status_reason=row.status_reason or "",
        updated_at=aware(row.updated_at),
        override_by=row.override_by,
        override_reason=row.override_reason,
        decisions=tuple(decisions),
    )


def _now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(UTC)


def _version_text(version: int | None) -> str:
    return "no version" if version is None else f"version {version}"
