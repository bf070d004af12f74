"""Keyed audit hashes on a real SQLite store: someone with write access to the database cannot
recompute a valid chain, a keyed log never passes without its key, and credentials never enter
audit details."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.core.redaction import Redactor
from services.core.store import Store, open_store
from services.governance import audit
from tests.audit_support import plain_hash, recompute_plain_chain

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
KEY = "k3y-" + "0123456789abcdef" * 3
OTHER_KEY = "other-" + "fedcba9876543210" * 3


def open_at(db: Path, key: str | None = None, **kwargs: Any) -> Store:
    return open_store(f"sqlite:///{db}", audit_key=key, **kwargs)


def append(store: Store, n: int = 1, **fields: Any) -> list[audit.AuditEvent]:
    made = []
    with store.write() as connection:
        for _ in range(n):
            seq = len(audit.events(connection)) + 1
            values = {
                "actor": f"user-{seq}",
                "action": "promotion.requested",
                "subject": audit.subject_for("wine", "alias", "champion"),
                "details": {"version": seq},
                "now": START + timedelta(minutes=seq),
                **fields,
            }
            made.append(audit.append(connection, **values))
    return made


def verify(store: Store) -> audit.ChainCheck:
    with store.read() as connection:
        return audit.verify(connection)


def rows(db: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(db) as connection:
        connection.row_factory = sqlite3.Row
        return list(connection.execute("SELECT * FROM audit_events ORDER BY seq"))


def test_with_a_key_events_are_keyed_and_verify(tmp_path: Path) -> None:
    store = open_at(tmp_path / "fd.db", KEY)
    made = append(store, 4)
    assert {e.scheme for e in made} == {audit.KEYED}
    assert {e.key_id for e in made} == {audit.key_id(KEY.encode())}
    assert KEY not in json.dumps([dict(r) for r in rows(tmp_path / "fd.db")])
    check = verify(store)
    assert check.intact and check.events == 4 and check.keyed == 4


def test_a_keyed_hash_is_not_the_plain_sha256(tmp_path: Path) -> None:
    store = open_at(tmp_path / "fd.db", KEY)
    append(store, 1)
    (row,) = rows(tmp_path / "fd.db")
    assert row["hash"] != plain_hash(row)


def test_recomputing_the_plain_chain_after_an_edit_is_caught_with_a_key(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    store = open_at(db, KEY)
    append(store, 5)
    recompute_plain_chain(db, 3, mark_plain=False, actor="mallory")
    check = verify(store)
    assert not check.intact
    assert check.first_broken == 3
    assert "event 3 was changed after it was recorded" in check.problem


def test_recomputing_the_tail_as_unkeyed_events_is_caught_with_a_key(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    store = open_at(db, KEY)
    append(store, 5)
    recompute_plain_chain(db, 3, mark_plain=True, actor="mallory")
    check = verify(store)
    assert check.first_broken == 3
    assert "event 3 is not keyed, but event 1 before it is" in check.problem


def test_without_a_key_the_same_recomputation_passes_the_chain(tmp_path: Path) -> None:
    # What the README says plain hashes do not protect against (the anchor still does).
    db = tmp_path / "fd.db"
    store = open_at(db)
    append(store, 5)
    recompute_plain_chain(db, 3, mark_plain=True, actor="mallory")
    assert verify(store).intact


def test_a_keyed_log_without_the_key_is_unverifiable_never_intact(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    append(open_at(db, KEY), 3)
    check = verify(open_at(db))
    assert not check.intact
    assert check.unverifiable
    assert check.first_broken == 1
    assert f"audit key id {audit.key_id(KEY.encode())}" in check.problem
    assert "no audit key is configured here" in check.problem
    assert "FLIGHTDECK_AUDIT_KEY" in check.problem


def test_a_keyed_log_with_the_wrong_key_names_both_key_ids(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    append(open_at(db, KEY), 3)
    check = verify(open_at(db, OTHER_KEY))
    assert not check.intact and check.unverifiable
    assert check.first_broken == 1
    assert audit.key_id(KEY.encode()) in check.problem
    assert audit.key_id(OTHER_KEY.encode()) in check.problem
    assert "another audit key" in check.problem


def test_a_forged_key_id_does_not_make_a_wrong_key_pass(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    append(open_at(db, KEY), 2)
    forged = audit.key_id(OTHER_KEY.encode())
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE audit_events SET key_id = ?", (forged,))
    check = verify(open_at(db, OTHER_KEY))
    assert check.first_broken == 1
    assert "event 1 was changed after it was recorded" in check.problem


def test_an_unkeyed_log_stays_verifiable_after_a_key_is_configured(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    before = append(open_at(db), 3)
    keyed_store = open_at(db, KEY)
    after = append(keyed_store, 2)
    assert {e.scheme for e in before} == {audit.PLAIN}
    assert {e.scheme for e in after} == {audit.KEYED}
    assert after[0].prev_hash == before[-1].hash
    check = verify(keyed_store)
    assert check.intact and check.events == 5 and check.keyed == 2


def test_changing_an_old_unkeyed_event_is_still_caught_once_keyed_events_follow(
    tmp_path: Path,
) -> None:
    db = tmp_path / "fd.db"
    append(open_at(db), 3)
    keyed_store = open_at(db, KEY)
    append(keyed_store, 2)
    # Rewriting events 2 and 3 changes the link the first keyed event (4) carries, and its
    # HMAC covers that link: it cannot be recomputed without the key.
    recompute_plain_chain(db, 2, mark_plain=True, through=3, actor="mallory")
    check = verify(keyed_store)
    assert not check.intact
    assert check.first_broken == 4
    assert "event 4 was changed after it was recorded" in check.problem


def test_an_unknown_scheme_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    store = open_at(db, KEY)
    append(store, 2)
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE audit_events SET scheme = 'none' WHERE seq = 2")
    check = verify(store)
    assert check.first_broken == 2
    assert "unknown hash scheme 'none'" in check.problem


def test_audit_details_are_redacted_of_secrets_and_url_passwords(tmp_path: Path) -> None:
    db = tmp_path / "fd.db"
    store = open_at(db, redactor=Redactor.of(["hunter2-secret", "tok-123456"]))
    (event,) = append(
        store,
        details={
            "reason": "engine said: bad token tok-123456 at https://bot:hunter2-secret@ci/x",
            "nested": {"url": "postgresql://fd:dbpass@db/fd", "list": ["hunter2-secret"]},
        },
    )
    stored = rows(db)[0]["details"]
    for secret in ("hunter2-secret", "tok-123456", "dbpass"):
        assert secret not in stored
    assert json.loads(stored) == {
        "reason": "engine said: bad token *** at https://bot:***@ci/x",
        "nested": {"url": "postgresql://fd:***@db/fd", "list": ["***"]},
    }
    assert event.details == json.loads(stored)
    assert verify(store).intact


@pytest.mark.parametrize("text", ["plain", "with http://u:pw@host/x"])
def test_redactor_repr_never_shows_the_secrets(text: str) -> None:
    redactor = Redactor.of(["s3cret-value"])
    assert "s3cret-value" not in repr(redactor)
    assert redactor.text(text + " s3cret-value").endswith(" ***")
