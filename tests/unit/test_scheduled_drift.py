"""Scheduled drift's batches: files by name, database windows by time, on a real SQLite database;
backfill requests and the audited-write helper on a real store."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from services.core.errors import ConfigurationError, DriftError, ServerUnreachable
from services.core.store import Store, open_store
from services.governance import audit
from services.governance.config import DriftSource, parse_governance
from services.monitoring.scheduled_drift import (
    BACKFILL_REQUESTED,
    batches_between,
    database_url,
    new_batches,
    open_backfills,
    request_backfill,
)

NOW = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)


@pytest.fixture
def scored(tmp_path: Path) -> DriftSource:
    """A SQLite table of scored rows, four per hour from 2026-12-01 to now, times as text."""
    url = f"sqlite:///{tmp_path / 'scored.db'}"
    hours = int((NOW - datetime(2026, 12, 1, tzinfo=UTC)).total_seconds() // 3600)
    times = [
        datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(4 * hours)
    ]
    frame = pd.DataFrame(
        {
            "scored_at": [t.strftime("%Y-%m-%d %H:%M:%S") for t in times],
            "alcohol": [float(i % 7) for i in range(len(times))],
        }
    )
    engine = sa.create_engine(url)
    frame.to_sql("scored", engine, index=False)
    engine.dispose()
    return DriftSource(url=url, query="select * from scored", time_column="scored_at")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path / 'flightdeck.db'}")


def test_a_new_database_source_starts_with_the_last_closed_window(scored: DriftSource) -> None:
    (batch,) = new_batches(scored, Path("."), None, NOW)
    assert batch.name == "2026-12-03T00:00:00Z"
    assert (batch.window_start, batch.window_end) == (
        datetime(2026, 12, 3, tzinfo=UTC),
        datetime(2026, 12, 4, tzinfo=UTC),
    )
    rows = batch.read()
    assert len(rows) == 96  # every quarter hour of the day, the boundary rows counted once
    assert list(rows.columns) == ["alcohol"]  # the time column is not an input


def test_windows_after_the_watermark_are_the_closed_ones_only(scored: DriftSource) -> None:
    six_hours = DriftSource(**{**_fields(scored), "window_hours": 6})
    names = [b.name for b in new_batches(six_hours, Path("."), "2026-12-03T06:00:00Z", NOW)]
    assert names == ["2026-12-03T12:00:00Z", "2026-12-03T18:00:00Z", "2026-12-04T00:00:00Z"]
    assert new_batches(six_hours, Path("."), "2026-12-04T00:00:00Z", NOW) == []


def test_a_backfill_range_of_dates_gives_every_window_in_it(scored: DriftSource) -> None:
    batches = batches_between(scored, Path("."), "2026-12-01", "2026-12-03", NOW)
    assert [b.name for b in batches] == ["2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z"]
    assert sum(len(b.read()) for b in batches) == 2 * 96
    with pytest.raises(DriftError, match="not a date"):
        batches_between(scored, Path("."), "last week", "2026-12-03", NOW)


def test_file_batches_are_taken_by_name(tmp_path: Path) -> None:
    for name in ["2026-12-02.csv", "2026-12-01.csv", "notes.txt", "2026-12-03.parquet"]:
        (tmp_path / name).write_text("a\n1\n", encoding="utf-8")
    source = DriftSource(path=str(tmp_path))
    assert [b.name for b in new_batches(source, tmp_path, "2026-12-01.csv", NOW)] == [
        "2026-12-02.csv",
        "2026-12-03.parquet",
    ]
    between = batches_between(source, tmp_path, "2026-12-01", "2026-12-03", NOW)
    assert [b.name for b in between] == ["2026-12-01.csv", "2026-12-02.csv"]


def test_the_url_reads_its_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    source = DriftSource(url="postgresql://app:${SCORED_PW}@db/scores", query="q", time_column="t")
    monkeypatch.setenv("SCORED_PW", "s3cret")
    assert database_url(source) == "postgresql://app:s3cret@db/scores"
    monkeypatch.delenv("SCORED_PW")
    with pytest.raises(ConfigurationError, match="SCORED_PW"):
        database_url(source)


def test_database_sources_are_read_from_the_configuration_and_checked() -> None:
    section = {"url": "sqlite:///x.db", "query": "select 1", "time_column": "t", "window_hours": 6}
    read = parse_governance({"monitoring": {"sources": {"m": section}}}).drift_sources["m"]
    assert (read.is_sql, read.window_hours, read.path) == (True, 6.0, "")
    for bad in (
        {"url": "sqlite:///x.db"},  # no query
        {**section, "path": "/data"},  # both kinds
        {**section, "window_hours": 0},
        {"query": "select 1"},  # neither
    ):
        with pytest.raises(ConfigurationError, match=r"monitoring\.sources"):
            parse_governance({"monitoring": {"sources": {"m": bad}}})


def test_a_backfill_is_recorded_with_an_audit_event_and_checked(
    store: Store, scored: DriftSource
) -> None:
    sources = {"wine": scored}
    made = request_backfill(store, sources, "wine", "2026-12-01", "2026-12-03", "ada", NOW)
    assert open_backfills(store, "wine") == [made]
    with store.read() as connection:
        (event,) = audit.events(connection, actions=(BACKFILL_REQUESTED,))
    assert (event.actor, event.details["first"], event.details["end"]) == (
        "ada",
        "2026-12-01",
        "2026-12-03",
    )
    with pytest.raises(DriftError, match=r"no \[monitoring\.sources\]"):
        request_backfill(store, sources, "other", "2026-12-01", "2026-12-03", "ada", NOW)
    with pytest.raises(DriftError, match="empty"):
        request_backfill(store, sources, "wine", "2026-12-03", "2026-12-01", "ada", NOW)
    assert len(open_backfills(store)) == 1


def test_an_audited_write_records_intent_then_outcome_or_failure(store: Store) -> None:
    def write() -> AbstractContextManager[audit.AuditedWrite]:
        return audit.audited_write(
            store,
            actor="ada",
            subject="model:wine",
            intent="x.saving",
            outcome="x.saved",
            failure="x.save_failed",
            details={"alias": "champion"},
        )

    with write() as done:
        done.outcome["run_id"] = "r1"
    with pytest.raises(ServerUnreachable), write():
        raise ServerUnreachable("MLflow is down")
    with store.read() as connection:
        events = audit.events(connection)
    assert [(e.action, e.details) for e in events] == [
        ("x.saving", {"alias": "champion"}),
        ("x.saved", {"alias": "champion", "run_id": "r1"}),
        ("x.saving", {"alias": "champion"}),
        ("x.save_failed", {"alias": "champion", "reason": "MLflow is down"}),
    ]


def _fields(source: DriftSource) -> dict[str, object]:
    return {name: getattr(source, name) for name in DriftSource.__dataclass_fields__}
