"""Alias history: who moved an alias (or legacy stage), when, from which version to which, and why.

Answered from the audit log: Flightdeck's own moves (``alias.moved``), and moves made outside
Flightdeck (``alias.external_change``), which the control loop records: every pass polls MLflow
(:func:`detect_external_changes`), and MLflow's registry webhooks, where the server sends them,
report a move within seconds (:func:`record_reported_move`). Servers that promote by legacy
stage get the same history, rollback and detection (by polling), per stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core.conventions import SERVING_STAGES
from services.core.records import AliasMove
from services.core.store import Store, promotion_requests
from services.core.wiring import Wiring
from services.governance import audit
from services.governance.requests import EXECUTING, Registry

MOVE_ACTIONS = ("alias.moved", "alias.external_change")
HISTORY_COLUMNS = (
    "When", "Alias", "From", "To", "Moved by", "Requested by", "Approved by", "Why",
    "Outside Flightdeck", "Request",
)  # fmt: skip
OBSERVED = "alias.observed"


def rollback_target(services: Wiring, model: str, target: str) -> int | None:
    """The version that held ``target`` before its current holder, from the audit log."""
    for move in reversed(alias_history(services.store, model, services.governance.target, target)):
        if move.previous is not None:
            return move.previous
    return None


def rollback_targets(services: Wiring, model: str) -> dict[str, int]:
    """Each alias (or serving stage) of ``model`` that has a previous holder, and that version."""
    targets = current_targets(services.registry, model, services.governance.target)
    found = {target: rollback_target(services, model, target) for target in targets}
    return {target: version for target, version in found.items() if version is not None}


def current_targets(registry: Registry, model: str, target_kind: str) -> dict[str, int]:
    """What each alias of ``model`` points at; with legacy stages, the newest version in each
    serving stage (Staging, Production)."""
    if target_kind == "alias":
        return registry.model_aliases(model)
    holders: dict[str, int] = {}
    for version in registry.versions_of(model):
        if version.stage in SERVING_STAGES:
            holders[version.stage] = max(version.version, holders.get(version.stage, 0))
    return holders


def alias_history(store: Store, model: str, target_kind: str, target: str = "") -> list[AliasMove]:
    """Every move of ``target`` (or of every alias or stage when blank), oldest first.

    Each move's ``alias`` is the alias or stage it concerns.
    """
    prefix = audit.subject_for(model, target_kind, target) if target else audit.subject_for(model)
    with store.read() as connection:
        found = audit.events(connection, subject_prefix=prefix, actions=MOVE_ACTIONS)
    moves = []
    for event in found:
        model_part, _, target_part = event.subject.rpartition(f"/{target_kind}:")
        if model_part != audit.subject_for(model) or (target and target_part != target):
            continue  # another model whose name starts with this one's
        moves.append(
            AliasMove(
                alias=target_part,
                version=event.details.get("version"),
                previous=event.details.get("previous"),
                at=event.at,
                actor=event.actor,
                reason=str(event.details.get("reason") or ""),
                external=event.action == "alias.external_change",
                requested_by=str(event.details.get("requested_by") or ""),
                approved_by=tuple(event.details.get("approved_by") or ()),
                request_id=event.request_id,
            )
        )
    return moves


def holder_at(moves: Sequence[AliasMove], at: datetime) -> AliasMove | None:
    """The move that decided what the target pointed at, at time ``at``; None before any."""
    earlier = [m for m in moves if m.at <= at.astimezone(UTC)]
    return earlier[-1] if earlier else None


def detect_external_changes(
    services: Wiring, model: str, since: datetime | None = None
) -> list[str]:
    """Record aliases (or serving stages) of ``model`` that moved outside Flightdeck since it
    last looked.

    Returns the targets found changed. A target Flightdeck has never seen is recorded once as
    observed, so its history has a starting point. ``since`` is the last time anything looked
    (the control loop's previous pass): a move is recorded as made between then and now.
    """
    now = datetime.now(UTC)
    holders = current_targets(services.registry, model, services.governance.target)
    return _record_moves(services, model, holders, None, now, _outside(since, now), since)


def record_reported_move(
    services: Wiring, model: str, alias: str, version: int | None, delivery_id: str
) -> bool:
    """Record a move of ``alias`` that MLflow reported (a registry webhook): ``version`` now
    holds it, or nothing when it was deleted. True when it was recorded; False when Flightdeck
    made it, already knew it, or already had this delivery (a replay)."""
    now = datetime.now(UTC)
    reason = f"changed outside Flightdeck, reported by MLflow at {now:%Y-%m-%d %H:%M:%S} UTC"
    holders = {} if version is None else {alias: version}
    recorded = _record_moves(services, model, holders, alias, now, reason, None, delivery_id)
    return bool(recorded)


def _record_moves(
    services: Wiring,
    model: str,
    holders: Mapping[str, int],
    only: str | None,
    now: datetime,
    reason: str,
    since: datetime | None,
    delivery_id: str = "",
) -> list[str]:
    """Record each target whose holder differs from the last one known (only ``only`` when
    given); one transaction, so concurrent detections record a move once."""
    target_kind = services.governance.target
    changed: list[str] = []
    with services.store.write() as connection:
        busy = {
            row.target
            for row in connection.execute(
                sa.select(promotion_requests.c.target).where(
                    promotion_requests.c.model == model,
                    promotion_requests.c.status == EXECUTING,
                )
            )
        }
        known = _last_known_holders(connection, model, target_kind)
        targets = {only} if only else set(holders) | set(known)
        if delivery_id and only and _delivered(connection, model, target_kind, only, delivery_id):
            return []
        for alias in sorted(targets):
            if alias in busy:
                continue  # Flightdeck is moving it: the request records the move
            current, last = holders.get(alias), known.get(alias, ...)
            if last is ... and current is None:
                continue
            if last is not ... and last == current:
                continue
            first_sight = last is ...
            previous = None if last is ... else last
            audit.append(
                connection,
                actor="mlflow",
                action=OBSERVED if first_sight else "alias.external_change",
                subject=audit.subject_for(model, target_kind, alias),
                details={
                    "version": current,
                    "previous": previous,
                    "reason": "first seen by Flightdeck" if first_sight else reason,
                    **({"since": since.isoformat()} if since and not first_sight else {}),
                    **({"delivery_id": delivery_id} if delivery_id else {}),
                },
                now=now,
            )
            if not first_sight:
                changed.append(alias)
                services.notifier.record(
                    connection,
                    "moved_outside_flightdeck",
                    f"@{alias} of {model} was moved outside Flightdeck: "
                    f"{_version_label(previous)} → {_version_label(current)}.",
                    {"model": model, "target": alias, "previous": previous, "version": current},
                    now,
                )
    return changed


def _delivered(
    connection: Connection, model: str, target_kind: str, alias: str, delivery_id: str
) -> bool:
    """Whether a move with this webhook delivery id is already recorded."""
    subject = audit.subject_for(model, target_kind, alias)
    found = audit.events(connection, subject_prefix=subject, actions=(*MOVE_ACTIONS, OBSERVED))
    return any(e.subject == subject and e.details.get("delivery_id") == delivery_id for e in found)


def _outside(since: datetime | None, now: datetime) -> str:
    if since is None:
        return "changed outside Flightdeck"
    return f"changed outside Flightdeck between {since:%Y-%m-%d %H:%M:%S} and {now:%H:%M:%S} UTC"


def _last_known_holders(
    connection: Connection, model: str, target_kind: str
) -> dict[str, int | None]:
    found = audit.events(
        connection,
        subject_prefix=audit.subject_for(model) + f"/{target_kind}:",
        actions=(*MOVE_ACTIONS, OBSERVED),
    )
    holders: dict[str, int | None] = {}
    for event in found:
        alias = event.subject.rsplit(f"/{target_kind}:", 1)[-1]
        if event.subject != audit.subject_for(model, target_kind, alias):
            continue  # another model whose name starts with this one's
        holders[alias] = event.details.get("version")
    return holders


def history_table(moves: Sequence[AliasMove]) -> pd.DataFrame:
    """The model page's history: newest first, one row per move."""
    return pd.DataFrame(
        [
            {
                "When": m.at,
                "Alias": m.alias,
                "From": _version_label(m.previous),
                "To": _version_label(m.version),
                "Moved by": m.actor,
                "Requested by": m.requested_by,
                "Approved by": ", ".join(m.approved_by),
                "Why": m.reason,
                "Outside Flightdeck": m.external,
                "Request": (m.request_id or "")[:8],
            }
            for m in reversed(moves)
        ],
        columns=list(HISTORY_COLUMNS),
    )


def _version_label(version: int | None) -> str:
    return "—" if version is None else f"v{version}"
