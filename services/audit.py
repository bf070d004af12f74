"""The audit log: append-only and tamper-evident.

Each event stores the hash of the event before it, and its own hash covers every field plus
that link. Changing, deleting or reordering a stored event breaks the chain at that point, and
:func:`verify` names the first broken link. The first event links to :data:`GENESIS`.

Events are appended inside the write transaction of the change they describe (see
:meth:`services.store.Store.write`), so an event and its change land together or not at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.store import audit_events

GENESIS = "0" * 64
"""The link of the first event."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened, who did it, and why."""

    seq: int
    """Position in the log, from 1, without gaps."""
    at: datetime
    """When it was recorded (aware, UTC)."""
    actor: str
    """Who did it: a user name or email, or ``mlflow`` for changes seen from outside."""
    action: str
    """What happened, e.g. ``promotion.requested``, ``alias.moved``, ``alias.external_change``."""
    subject: str
    """What it happened to, e.g. ``model:wine-classifier/alias:champion``."""
    request_id: str | None
    """The promotion request it belongs to, if any."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Everything else (versions, reasons, comments); JSON-serialisable, untrusted text."""
    prev_hash: str = GENESIS
    """The hash of the event before this one."""
    hash: str = ""
    """SHA-256 over this event's fields and ``prev_hash``."""


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of :func:`verify`."""

    events: int
    """How many events were checked."""
    first_broken: int | None
    """The sequence number of the first event whose link or hash is wrong; None when intact."""
    problem: str
    """What is wrong there, for a person; empty when intact."""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def subject_for(model: str, target_kind: str = "", target: str = "") -> str:
    """The subject naming a model, or one of its aliases or stages."""
    return f"model:{model}" + (f"/{target_kind}:{target}" if target else "")


def append(
    connection: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append an event after the current last one; call inside ``Store.write()``."""
    last = connection.execute(
        sa.select(audit_events.c.seq, audit_events.c.hash)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        at=(now or datetime.now(UTC)).astimezone(UTC),
        actor=actor,
        action=action,
        subject=subject,
        request_id=request_id,
        details=dict(details or {}),
        prev_hash=last.hash if last else GENESIS,
    )
    event = _with_hash(event)
    connection.execute(
        audit_events.insert().values(
            seq=event.seq,
            at=event.at,
            actor=event.actor,
            action=event.action,
            subject=event.subject,
            request_id=event.request_id,
            details=_canonical(event.details),
            prev_hash=event.prev_hash,
            hash=event.hash,
        )
    )
    return event


def events(
    connection: Connection,
    *,
    subject_prefix: str | None = None,
    request_id: str | None = None,
    actions: Sequence[str] = (),
    limit: int | None = None,
) -> list[AuditEvent]:
    """Events in order, optionally only for subjects starting with a prefix, a request, or
    some actions; with ``limit``, the newest ``limit`` of them (still oldest first)."""
    query = sa.select(audit_events)
    if subject_prefix is not None:
        query = query.where(audit_events.c.subject.startswith(subject_prefix, autoescape=True))
    if request_id is not None:
        query = query.where(audit_events.c.request_id == request_id)
    if actions:
        query = query.where(audit_events.c.action.in_(actions))
    query = query.order_by(audit_events.c.seq.desc())
    if limit is not None:
        query = query.limit(limit)
    return [_event(row) for row in reversed(connection.execute(query).all())]


def verify(connection: Connection) -> ChainCheck:
    """Walk the whole log and report the first event whose link or hash is wrong."""
    previous_hash, expected_seq, count = GENESIS, 1, 0
    rows = connection.execute(sa.select(audit_events).order_by(audit_events.c.seq))
    for row in rows:
        count += 1
        try:
            event = _event(row)
        except (ValueError, TypeError) as exc:
            return ChainCheck(count, row.seq, f"event {row.seq} cannot be read: {exc}")
        if event.seq != expected_seq:
            return ChainCheck(
                count, event.seq, f"event {expected_seq} is missing (the next one is {event.seq})"
            )
        if event.prev_hash != previous_hash:
            return ChainCheck(
                count,
                event.seq,
                f"event {event.seq} does not link to event {event.seq - 1}: an event before it "
                "was changed or removed",
            )
        if _with_hash(event).hash != event.hash:
            return ChainCheck(
                count, event.seq, f"event {event.seq} was changed after it was recorded"
            )
        previous_hash, expected_seq = event.hash, expected_seq + 1
    return ChainCheck(count, None, "")


def _with_hash(event: AuditEvent) -> AuditEvent:
    content = _canonical(
        {
            "seq": event.seq,
            "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": event.actor,
            "action": event.action,
            "subject": event.subject,
            "request_id": event.request_id,
            "details": event.details,
            "prev_hash": event.prev_hash,
        }
    )
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    return AuditEvent(**{**_fields(event), "hash": digest})


def _event(row: Any) -> AuditEvent:
    at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)  # SQLite drops the zone
    return AuditEvent(
        seq=row.seq,
        at=at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        request_id=row.request_id,
        details=json.loads(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _fields(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in AuditEvent.__dataclass_fields__}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
