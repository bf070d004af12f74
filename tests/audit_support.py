"""Tampering with the audit log as someone with write access to the database would."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.governance import audit


def plain_hash(row: sqlite3.Row, **changes: Any) -> str:
    """What an attacker computes: the plain SHA-256 of the public hashing recipe."""
    values = dict(row) | changes
    at = datetime.fromisoformat(values["at"]).replace(tzinfo=UTC)
    content = json.dumps(
        {
            "seq": values["seq"],
            "at": at.isoformat(timespec="microseconds"),
            "actor": values["actor"],
            "action": values["action"],
            "subject": values["subject"],
            "request_id": values["request_id"],
            "details": json.loads(values["details"]),
            "prev_hash": values["prev_hash"],
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def recompute_plain_chain(
    db: Path, edit_seq: int, *, mark_plain: bool, through: int | None = None, **edit: Any
) -> None:
    """Edit one event and recompute every hash from it on (up to ``through``) with plain
    SHA-256, as someone with write access to the database (and this source code) would; the
    event after ``through`` is relinked to the forged one, its own hash left as it is."""
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        events = list(connection.execute("SELECT * FROM audit_events ORDER BY seq"))
        previous = events[edit_seq - 2]["hash"] if edit_seq > 1 else audit.GENESIS
        last = through or len(events)
        for row in events[edit_seq - 1 : last]:
            changes = {**(edit if row["seq"] == edit_seq else {}), "prev_hash": previous}
            new_hash = plain_hash(row, **changes)
            scheme = audit.PLAIN if mark_plain else row["scheme"]
            key_id = None if mark_plain else row["key_id"]
            sets = ", ".join(f"{column} = ?" for column in changes)
            connection.execute(
                f"UPDATE audit_events SET {sets}, hash = ?, scheme = ?, key_id = ? WHERE seq = ?",
                (*changes.values(), new_hash, scheme, key_id, row["seq"]),
            )
            previous = new_hash
        if last < len(events):
            connection.execute(
                "UPDATE audit_events SET prev_hash = ? WHERE seq = ?", (previous, last + 1)
            )
