"""The audit log on a real SQLite store: the hash chain catches tampering, filters are exact."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from services.core.errors import StoreError
from services.core.store import MIGRATIONS_DIR, Store, open_store
from services.governance import audit

START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "flightdeck.db"


@pytest.fixture
def store(db: Path) -> Store:
    return open_store(f"sqlite:///{db}")


def append(store: Store, n: int = 1, **fields: Any) -> list[audit.AuditEvent]:
    """Append ``n`` events; times are fixed so two stores can hold identical events."""
    made = []
    with store.write() as connection:
        for _ in range(n):
            seq = len(audit.events(connection)) + 1
            values = {
                "actor": f"user-{seq}",
                "action": "promotion.requested",
                "subject": audit.subject_for("wine", "alias", "champion"),
                "details": {"version": seq, "reason": "better f1"},
                "now": START + timedelta(minutes=seq),
                **fields,
            }
            made.append(audit.append(connection, **values))
    return made


def verify(store: Store) -> audit.ChainCheck:
    with store.read() as connection:
        return audit.verify(connection)


def raw(db: Path, sql: str, *params: object) -> None:
    """Change the database behind the store's back, as someone with file access could."""
    with sqlite3.connect(db) as connection:
        connection.execute(sql, params)


def test_an_empty_log_is_intact(store: Store) -> None:
    check = verify(store)
    assert check == audit.ChainCheck(0, None, "")
    assert check.intact


def test_appended_events_form_a_chain_that_verifies(store: Store) -> None:
    made = append(store, 5)
    assert [e.seq for e in made] == [1, 2, 3, 4, 5]
    assert made[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(made))
    check = verify(store)
    assert check.intact
    assert check.events == 5


def test_events_read_back_as_written(store: Store) -> None:
    (event,) = append(store, details={"comment": "ünïcode ✓", "n": 1.5}, request_id="r1")
    with store.read() as connection:
        (stored,) = audit.events(connection)
    assert stored == event
    assert stored.at.tzinfo is not None


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("actor", "mallory"),
        ("details", '{"reason":"better f1","version":99}'),
        ("action", "promotion.rejected"),
        ("subject", "model:wine/alias:challenger"),
        ("request_id", "forged"),
        ("at", "2020-01-01 00:00:00.000000"),
    ],
)
def test_changing_a_stored_field_is_detected_at_that_event(
    store: Store, db: Path, column: str, value: str
) -> None:
    append(store, 5)
    raw(db, f"UPDATE audit_events SET {column} = ? WHERE seq = 3", value)
    check = verify(store)
    assert not check.intact
    assert check.first_broken == 3
    assert "event 3 was changed after it was recorded" in check.problem
    assert check.events == 3


def test_rewriting_an_event_and_its_own_hash_breaks_the_next_link(
    store: Store, db: Path, tmp_path: Path
) -> None:
    append(store, 4)
    # An attacker recomputes event 3's hash for a forged actor (with a scratch log that holds
    # the same first two events), and writes both back: event 4 no longer links to it.
    scratch = open_store(f"sqlite:///{tmp_path / 'scratch.db'}")
    append(scratch, 2)
    (forged,) = append(scratch, actor="mallory")
    raw(db, "UPDATE audit_events SET actor = ?, hash = ? WHERE seq = 3", "mallory", forged.hash)
    check = verify(store)
    assert check.first_broken == 4
    assert "event 4 does not link to event 3" in check.problem


def test_deleting_a_middle_event_is_detected_as_missing(store: Store, db: Path) -> None:
    append(store, 5)
    raw(db, "DELETE FROM audit_events WHERE seq = 3")
    check = verify(store)
    assert check.first_broken == 4
    assert "event 3 is missing (the next one is 4)" in check.problem


def test_deleting_the_first_event_is_detected(store: Store, db: Path) -> None:
    append(store, 3)
    raw(db, "DELETE FROM audit_events WHERE seq = 1")
    check = verify(store)
    assert check.first_broken == 2
    assert "event 1 is missing" in check.problem


def test_reordering_events_is_detected(store: Store, db: Path) -> None:
    append(store, 4)
    raw(db, "UPDATE audit_events SET seq = -1 WHERE seq = 2")
    raw(db, "UPDATE audit_events SET seq = 2 WHERE seq = 3")
    raw(db, "UPDATE audit_events SET seq = 3 WHERE seq = -1")
    check = verify(store)
    assert check.first_broken == 2
    assert "does not link to event 1" in check.problem


def test_changing_a_link_is_detected(store: Store, db: Path) -> None:
    append(store, 4)
    raw(db, "UPDATE audit_events SET prev_hash = ? WHERE seq = 3", "f" * 64)
    check = verify(store)
    assert check.first_broken == 3
    assert "event 3 does not link to event 2" in check.problem


def test_unreadable_details_are_reported_not_raised(store: Store, db: Path) -> None:
    append(store, 2)
    raw(db, "UPDATE audit_events SET details = ? WHERE seq = 2", "{not json")
    check = verify(store)
    assert check.first_broken == 2
    assert "event 2 cannot be read" in check.problem


def test_appending_after_tampering_does_not_repair_the_chain(store: Store, db: Path) -> None:
    append(store, 3)
    raw(db, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    append(store, 2)
    assert verify(store).first_broken == 2


MODELS = ["wine quality", "team/fraud", "modèle-ü", "100%_sure", "100ab_sure", "a_b", "axb"]


@pytest.mark.parametrize("model", MODELS)
def test_subject_prefix_matches_literally(store: Store, model: str) -> None:
    for name in MODELS:
        append(store, subject=audit.subject_for(name, "alias", "champion"), actor=name)
        append(store, subject=audit.subject_for(name), actor=name)
    with store.read() as connection:
        found = audit.events(connection, subject_prefix=audit.subject_for(model))
    assert {e.actor for e in found} == {model}
    assert [e.subject for e in found] == [
        f"model:{model}/alias:champion",
        f"model:{model}",
    ]


def test_wildcards_in_a_prefix_do_not_match_other_characters(store: Store) -> None:
    append(store, subject="model:100ab_sure/alias:champion")
    append(store, subject="model:axb")
    with store.read() as connection:
        assert audit.events(connection, subject_prefix="model:100%") == []
        assert audit.events(connection, subject_prefix="model:a_b") == []
        assert audit.events(connection, subject_prefix="model:%") == []


def test_events_filter_by_request_and_actions(store: Store) -> None:
    append(store, request_id="r1", action="promotion.requested")
    append(store, request_id="r2", action="promotion.requested")
    append(store, request_id="r1", action="promotion.approved")
    append(store, request_id=None, action="alias.external_change")
    with store.read() as connection:
        by_request = audit.events(connection, request_id="r1")
        by_action = audit.events(
            connection, actions=["promotion.approved", "alias.external_change"]
        )
        both = audit.events(connection, request_id="r1", actions=["promotion.requested"])
    assert [e.seq for e in by_request] == [1, 3]
    assert [e.seq for e in by_action] == [3, 4]
    assert [e.seq for e in both] == [1]


def test_limit_keeps_the_newest_oldest_first(store: Store) -> None:
    append(store, 6)
    append(store, subject="model:other")
    with store.read() as connection:
        newest = audit.events(connection, limit=3)
        newest_wine = audit.events(connection, subject_prefix="model:wine", limit=2)
    assert [e.seq for e in newest] == [5, 6, 7]
    assert [e.seq for e in newest_wine] == [5, 6]


def test_migration_creates_the_tables_and_reopening_is_a_no_op(store: Store, db: Path) -> None:
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"promotion_requests", "audit_events", "retraining_jobs", "policy_decisions"} <= tables
    append(store, 2)
    again = open_store(f"sqlite:///{db}")
    with again.read() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
        assert [tuple(row) for row in versions] == [(newest_revision(),)]
        assert len(audit.events(connection)) == 2
    assert verify(again).intact


def newest_revision() -> str:
    """The head of ``services/migrations``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def test_a_new_store_creates_its_folder(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'deep' / 'er' / 'fd.db'}")
    assert (tmp_path / "deep" / "er" / "fd.db").is_file()
    assert verify(store).intact


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u:secret@127.0.0.1:9/x",
        "sqlite:////proc/forbidden/x.db",
        "not a url at all://u:secret@",
    ],
)
def test_an_unusable_store_raises_store_error_without_the_password(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "secret" not in message
    assert "application store" in message
