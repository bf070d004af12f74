"""Outgoing notifications: Slack-compatible JSON through an outbox in the store.

Whatever happens (a promotion step, an alias moved outside Flightdeck, a drift alarm raised or
cleared, a retrain started, finished or failed) is first recorded as a row of ``notifications``,
in the same transaction as the change when there is one, so none is lost. :func:`deliver_due`
posts the due rows to ``promotion.webhook_url``: each attempt is recorded, a failure is retried
with exponential backoff, and after :data:`MAX_ATTEMPTS` the row is given up, with its last
error kept. The control loop delivers on every pass; a promotion step also tries at once.
Two deliverers never post the same row: each claims it first.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core.errors import FlightdeckError
from services.core.store import Store, notifications
from services.governance.requests import PromotionRequest

WEBHOOK_TIMEOUT_S = 5
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
CLAIM = timedelta(seconds=60)
"""While one deliverer posts a row, no other may (longer than a post can take)."""
BATCH = 50
"""Rows one call posts at most, so a long outage never holds up a loop pass for long."""

Poster = Callable[[str, Mapping[str, Any]], None]
"""Posts a payload to a URL; raises on failure (a fake only where a test says so)."""


def post_json(url: str, payload: Mapping[str, Any]) -> None:
    """Post ``payload``; raises ``requests.RequestException`` unless it was accepted."""
    requests.post(url, json=payload, timeout=WEBHOOK_TIMEOUT_S).raise_for_status()


@dataclass(frozen=True, slots=True)
class Notifier:
    """Where Flightdeck's notifications go: the outbox in ``store``, delivered to
    ``webhook_url``. With no webhook configured nothing is recorded."""

    store: Store
    webhook_url: str
    post: Poster = post_json

    def record(
        self, connection: Connection, event: str, text: str, details: Mapping[str, Any],
        now: datetime,
    ) -> None:  # fmt: skip
        """Record a notification inside the caller's write transaction."""
        if self.webhook_url:
            enqueue(connection, event, text, details, now)

    def tell(self, event: str, text: str, details: Mapping[str, Any], now: datetime) -> None:
        """Record a notification in a transaction of its own; the loop delivers it."""
        if self.webhook_url:
            with self.store.write() as connection:
                enqueue(connection, event, text, details, now)

    def promotion_step(self, event: str, request: PromotionRequest, actor: str) -> None:
        """Record a promotion step and try to deliver it at once; the control loop retries.
        Never raises: a notification must not undo or block a promotion."""
        if not self.webhook_url:
            return
        now = datetime.now(UTC)
        text, details = promotion_text(event, request, actor)
        with contextlib.suppress(FlightdeckError):
            self.tell(event, text, details, now)
            self.deliver(now)

    def deliver(self, now: datetime) -> tuple[int, int]:
        """Post what is due; (delivered, failed this time). (0, 0) with no webhook."""
        if not self.webhook_url:
            return 0, 0
        return deliver_due(self.store, self.webhook_url, now, self.post)


def enqueue(
    connection: Connection, event: str, text: str, details: Mapping[str, Any], now: datetime
) -> None:
    """Record a notification, inside the caller's write transaction."""
    payload = {"text": text, "flightdeck": {"event": event, **details}}
    connection.execute(
        notifications.insert().values(
            event=event,
            payload=json.dumps(payload, default=str),
            created_at=now,
            attempts=0,
            next_attempt_at=now,
            last_error="",
        )
    )


def promotion_text(event: str, request: PromotionRequest, actor: str) -> tuple[str, dict[str, Any]]:
    """What a promotion step says, in words and in fields."""
    text = (
        f"{actor} {event} the promotion of {request.model} v{request.version} to "
        f"{request.target} (request {request.request_id[:8]}, status {request.status})."
    )
    details = {
        "request_id": request.request_id,
        "model": request.model,
        "version": request.version,
        "target": request.target,
        "status": request.status,
        "actor": actor,
    }
    return text, details


def deliver_due(store: Store, url: str, now: datetime, post: Poster = post_json) -> tuple[int, int]:
    """Post every due notification to ``url``; (delivered, failed this time)."""
    with store.read() as connection:
        due = connection.execute(
            sa.select(notifications.c.id)
            .where(
                notifications.c.delivered_at.is_(None),
                notifications.c.given_up_at.is_(None),
                notifications.c.next_attempt_at <= now,
            )
            .order_by(notifications.c.id)
            .limit(BATCH)
        ).all()
    delivered = failed = 0
    for (row_id,) in due:
        claimed = _claim(store, row_id, now)
        if claimed is None:
            continue  # another deliverer has it
        payload, attempts = claimed
        try:
            post(url, json.loads(payload))
        except requests.RequestException as exc:
            _record_failure(store, row_id, attempts + 1, str(exc)[:500], now)
            failed += 1
        else:
            _record(store, row_id, attempts=attempts + 1, delivered_at=now, last_error="")
            delivered += 1
    return delivered, failed


def _claim(store: Store, row_id: int, now: datetime) -> tuple[str, int] | None:
    with store.write() as connection:
        taken = connection.execute(
            notifications.update()
            .where(
                notifications.c.id == row_id,
                notifications.c.delivered_at.is_(None),
                notifications.c.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + CLAIM)
        ).rowcount
        if not taken:
            return None
        row = connection.execute(
            sa.select(notifications.c.payload, notifications.c.attempts).where(
                notifications.c.id == row_id
            )
        ).one()
    return str(row.payload), int(row.attempts)


def _record_failure(store: Store, row_id: int, attempts: int, error: str, now: datetime) -> None:
    if attempts >= MAX_ATTEMPTS:
        _record(store, row_id, attempts=attempts, given_up_at=now, last_error=error)
        return
    wait = min(FIRST_RETRY * 2 ** (attempts - 1), LONGEST_WAIT)
    _record(store, row_id, attempts=attempts, next_attempt_at=now + wait, last_error=error)


def _record(store: Store, row_id: int, **values: Any) -> None:
    with store.write() as connection:
        connection.execute(
            notifications.update().where(notifications.c.id == row_id).values(**values)
        )


def outbox(store: Store, limit: int = 50) -> list[dict[str, Any]]:
    """The newest notifications and how their delivery went, newest first."""
    with store.read() as connection:
        rows = connection.execute(
            sa.select(notifications).order_by(notifications.c.id.desc()).limit(limit)
        ).all()
    return [dict(row._mapping) for row in rows]
