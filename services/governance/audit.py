"""The audit log: append-only and tamper-evident.

Each event stores the hash of the event before it, and its own hash covers every field plus
that link. Changing, deleting or reordering a stored event breaks the chain at that point, and
:func:`verify` names the first broken link. The first event links to :data:`GENESIS`.

Two hash schemes, recorded on each event:

- :data:`PLAIN` (SHA-256) catches accidental edits and careless changes, but anyone who can
  write to the database can recompute a valid chain after editing an event.
- :data:`KEYED` (HMAC-SHA256 with the audit key, ``FLIGHTDECK_AUDIT_KEY``) cannot be recomputed
  without the key. Events also carry the key's id (an HMAC of a fixed label, not the key), so a
  log checked with a different key or none says so instead of passing.

Once a log has a keyed event, every later one must be keyed: a plain event after a keyed one
is reported, since that is what rewriting the tail without the key looks like. Removing the
newest events is caught by the anchor (:mod:`services.governance.audit_anchor`), not by the chain.

Events are appended inside the write transaction of the change they describe (see
:meth:`services.core.store.Store.write`), so an event and its change land together or not at all.
The store puts the key and a redactor on the connection; details are redacted of credentials
before they are hashed and stored.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core.redaction import NO_SECRETS, Redactor
from services.core.store import (
    AUDIT_APPENDED_INFO,
    AUDIT_KEY_INFO,
    REDACTOR_INFO,
    Store,
    audit_events,
    aware,
)

GENESIS = "0" * 64
"""The link of the first event."""
PLAIN = "sha256"
"""Events hashed with plain SHA-256 (no key configured when they were recorded)."""
KEYED = "hmac-sha256"
"""Events hashed with HMAC-SHA256 under the audit key."""
_KEY_ID_LABEL = b"flightdeck audit key id"


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
    """SHA-256 (or HMAC-SHA256, see ``scheme``) over this event's fields and ``prev_hash``."""
    scheme: str = PLAIN
    """How ``hash`` was made: :data:`PLAIN` or :data:`KEYED`."""
    key_id: str | None = None
    """For a keyed event, the id of the key (:func:`key_id`); None for a plain one."""


@dataclass(frozen=True, slots=True)
class Head:
    """The newest event of the log: what the anchor records."""

    seq: int
    """Its sequence number."""
    hash: str
    """Its hash."""
    scheme: str
    """Its hash scheme."""


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of :func:`verify`."""

    events: int
    """How many events were checked."""
    first_broken: int | None
    """The sequence number of the first event whose link or hash is wrong; None when intact."""
    problem: str
    """What is wrong there, for a person; empty when intact."""
    unverifiable: bool = False
    """True when the event at ``first_broken`` is keyed and no key, or another key, is
    configured here: it may be fine, but it cannot be shown to be."""
    keyed: int = 0
    """How many of the checked events are keyed."""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def key_id(key: bytes) -> str:
    """A short public id of an audit key: tells keys apart without revealing them."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


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
    """Append an event after the current last one; call inside ``Store.write()``.

    The event is keyed when the store has an audit key, and its details are redacted of
    credentials (configured secret values, URL passwords) before they are hashed and stored.
    """
    last = connection.execute(
        sa.select(audit_events.c.seq, audit_events.c.hash)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    key = _key(connection)
    redactor = connection.info.get(REDACTOR_INFO)
    redactor = redactor if isinstance(redactor, Redactor) else NO_SECRETS
    event = AuditEvent(
        seq=(last.seq + 1) if last else 1,
        at=(now or datetime.now(UTC)).astimezone(UTC),
        actor=actor,
        action=action,
        subject=subject,
        request_id=request_id,
        details=redactor.value(dict(details or {})),
        prev_hash=last.hash if last else GENESIS,
        scheme=KEYED if key else PLAIN,
        key_id=key_id(key) if key else None,
    )
    event = replace(event, hash=_hash(event, key))
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
            scheme=event.scheme,
            key_id=event.key_id,
        )
    )
    connection.info[AUDIT_APPENDED_INFO] = True
    return event


def record(
    store: Store,
    *,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event in a transaction of its own: for an event with no change in the store."""
    with store.write() as connection:
        return append(
            connection,
            actor=actor,
            action=action,
            subject=subject,
            details=details,
            request_id=request_id,
            now=now,
        )


@dataclass(slots=True)
class AuditedWrite:
    """A write in progress: the body adds what it learnt (an id, a count) to the outcome."""

    outcome: dict[str, Any] = field(default_factory=dict)


@contextmanager
def audited_write(
    store: Store,
    *,
    actor: str,
    subject: str,
    intent: str,
    outcome: str | None,
    failure: str,
    details: Mapping[str, Any] | None = None,
    request_id: str | None = None,
    failures: tuple[type[BaseException], ...] = (Exception,),
) -> Iterator[AuditedWrite]:
    """Record ``intent`` before the body (a write outside the store, e.g. to MLflow), then
    ``outcome`` after it or ``failure`` with the reason when it raises one of ``failures``.

    The intent lands first in its own transaction, so a crash in the body leaves a trace. Pass
    ``outcome=None`` when the body records its outcome with the change it makes, in one
    transaction.
    """
    base = dict(details or {})

    def note(action: str, extra: Mapping[str, Any]) -> None:
        record(
            store,
            actor=actor,
            action=action,
            subject=subject,
            details={**base, **extra},
            request_id=request_id,
        )

    note(intent, {})
    write = AuditedWrite()
    try:
        yield write
    except failures as exc:
        note(failure, {"reason": str(exc)})
        raise
    if outcome is not None:
        note(outcome, write.outcome)


def head(connection: Connection) -> Head | None:
    """The newest event's sequence number, hash and scheme; None for an empty log."""
    row = connection.execute(
        sa.select(audit_events.c.seq, audit_events.c.hash, audit_events.c.scheme)
        .order_by(audit_events.c.seq.desc())
        .limit(1)
    ).first()
    return Head(row.seq, row.hash, row.scheme) if row else None


def hash_at(connection: Connection, seq: int) -> str | None:
    """The stored hash of event ``seq``; None when there is no such event."""
    found = connection.execute(
        sa.select(audit_events.c.hash).where(audit_events.c.seq == seq)
    ).scalar_one_or_none()
    return None if found is None else str(found)


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
    """Walk the whole log and report the first event whose link or hash is wrong, or that
    cannot be checked with the key configured here (see :attr:`ChainCheck.unverifiable`)."""
    key = _key(connection)
    configured_id = key_id(key) if key else None
    previous_hash, expected_seq, count, keyed, first_keyed = GENESIS, 1, 0, 0, None
    rows = connection.execute(sa.select(audit_events).order_by(audit_events.c.seq))
    for row in rows:
        count += 1
        try:
            event = _event(row)
        except (ValueError, TypeError) as exc:
            return ChainCheck(count, row.seq, f"event {row.seq} cannot be read: {exc}", keyed=keyed)
        seq = event.seq
        if seq != expected_seq:
            return ChainCheck(
                count,
                seq,
                f"event {expected_seq} is missing (the next one is {seq})",
                keyed=keyed,
            )
        if event.prev_hash != previous_hash:
            return ChainCheck(
                count,
                seq,
                f"event {seq} does not link to event {seq - 1}: an event before it "
                "was changed or removed",
                keyed=keyed,
            )
        if event.scheme == KEYED:
            keyed += 1
            first_keyed = first_keyed or seq
            if key is None:
                return ChainCheck(
                    count,
                    seq,
                    f"event {seq} is keyed (audit key id {event.key_id}) but no audit key is "
                    "configured here, so it cannot be verified: set FLIGHTDECK_AUDIT_KEY (or "
                    "[flightdeck] audit_key) to the deployment's key",
                    unverifiable=True,
                    keyed=keyed,
                )
            if event.key_id != configured_id:
                return ChainCheck(
                    count,
                    seq,
                    f"event {seq} was keyed with another audit key (id {event.key_id}; the "
                    f"configured key's id is {configured_id}), so it cannot be verified: "
                    "configure the key it was recorded with",
                    unverifiable=True,
                    keyed=keyed,
                )
        elif event.scheme == PLAIN:
            if first_keyed is not None:
                return ChainCheck(
                    count,
                    seq,
                    f"event {seq} is not keyed, but event {first_keyed} before it is: the log "
                    f"was rewritten without the key from event {seq} on",
                    keyed=keyed,
                )
        else:
            return ChainCheck(
                count, seq, f"event {seq} has an unknown hash scheme {event.scheme!r}", keyed=keyed
            )
        if not hmac.compare_digest(_hash(event, key), event.hash):
            return ChainCheck(
                count, seq, f"event {seq} was changed after it was recorded", keyed=keyed
            )
        previous_hash, expected_seq = event.hash, expected_seq + 1
    return ChainCheck(count, None, "", keyed=keyed)


def _key(connection: Connection) -> bytes | None:
    key = connection.info.get(AUDIT_KEY_INFO)
    return key if isinstance(key, bytes) and key else None


def _hash(event: AuditEvent, key: bytes | None) -> str:
    """The event's hash under its own scheme (``key`` is used only for a keyed event)."""
    fields = {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "request_id": event.request_id,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    if event.scheme != KEYED:
        return hashlib.sha256(_canonical(fields).encode("utf-8")).hexdigest()
    if key is None:
        raise ValueError("a keyed event needs the audit key")
    content = _canonical({**fields, "scheme": KEYED, "key_id": event.key_id})
    return hmac.new(key, content.encode("utf-8"), hashlib.sha256).hexdigest()


def _event(row: Any) -> AuditEvent:
    at = aware(row.at)
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
        scheme=row.scheme,
        key_id=row.key_id,
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
