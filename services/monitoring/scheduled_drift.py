"""Scheduled drift monitoring: the control loop's step that monitors each new batch once.

Each model in ``[monitoring.sources]`` names where its batches come from:

- files: a folder or a glob of CSV or Parquet files; a file is a batch, taken in name order
  (name them by date);
- a database: a SQLAlchemy URL, a query and its time column; each closed window of
  ``window_hours`` (aligned on midnight UTC) is a batch, named by its start, compared without
  the time column; a window with no rows is passed over. A new database source starts with the
  last closed window.

The store keeps each model's watermark, the last batch monitored, so a restart neither skips nor
repeats one. It is exactly once even across a crash between logging a batch's run and moving the
watermark: each run carries its batch's name in ``flightdeck.batch``, and a batch with a finished
run is not logged again. A batch that cannot be read stops its model's queue (nothing is skipped)
and the pass reports why, on every pass, until it is fixed.

A backfill (:func:`request_backfill`) asks the next passes to monitor every batch in a range that
has no run yet, e.g. the history from before a source was configured; it leaves the watermark.
"""

from __future__ import annotations

import glob
import os
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core import filters
from services.core.conventions import BATCH_TAG, MODEL_TAG, MONITORING_EXPERIMENT
from services.core.errors import ConfigurationError, DriftError
from services.core.gateway import TrackingGateway
from services.core.store import Store, aware, drift_backfills, drift_watermarks
from services.governance import audit
from services.governance.config import DriftSource
from services.monitoring.readers import TABLE_SUFFIXES, read_sql, read_table
from services.monitoring.runs import log_monitoring_run, run_check

BATCH_ACTION = "monitoring.batch_logged"
BACKFILL_REQUESTED = "monitoring.backfill_requested"
BACKFILL_FINISHED = "monitoring.backfill_finished"
MAX_BATCHES_PER_PASS = 48
"""Per model and pass, so a long backfill or a new source leaves time for the loop's other steps;
the rest follows on the next passes."""
DATA_DIR_PLACEHOLDER = "{data_dir}"
"""In a source's path, Flightdeck's data folder (``FLIGHTDECK_DATA_DIR``)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""A database batch's name: its window's start, so name order is time order."""


@dataclass(frozen=True, slots=True)
class Batch:
    """One batch of a source, not read yet."""

    name: str
    """Its key: in ``flightdeck.batch``, the watermark and a backfill's range."""
    window_start: datetime
    window_end: datetime
    read: Callable[[], pd.DataFrame]


@dataclass(frozen=True, slots=True)
class Backfill:
    """A request to monitor the batches named ``first`` up to, not including, ``end``."""

    backfill_id: int
    model: str
    first: str
    end: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None


# -- batches ----------------------------------------------------------------------------------


def batch_files(source: DriftSource, data_dir: Path) -> list[Path]:
    """The source's batch files, in name order."""
    path = source.path.replace(DATA_DIR_PLACEHOLDER, str(data_dir))
    folder = Path(path)
    pattern = str(folder / "*") if folder.is_dir() else path
    found = (Path(p) for p in glob.glob(pattern))
    return sorted(
        (p for p in found if p.is_file() and p.suffix.lower() in TABLE_SUFFIXES),
        key=lambda p: p.name,
    )


def new_batches(
    source: DriftSource, data_dir: Path, after: str | None, now: datetime
) -> list[Batch]:
    """The batches after the watermark ``after`` (all files, or the last closed window, when
    there is none), oldest first."""
    if not source.is_sql:
        return [b for b in _file_batches(source, data_dir) if after is None or b.name > after]
    window = timedelta(hours=source.window_hours)
    last = _batch_time(after) if after else None
    first = last + window if last else _window_start(now, window) - window
    return _windows(source, first, now)


def batches_between(
    source: DriftSource, data_dir: Path, first: str, end: str, now: datetime
) -> list[Batch]:
    """The batches named ``first`` up to, not including, ``end``; for a database, the closed
    windows from the one holding ``first`` (a date or a time) to ``end``."""
    if not source.is_sql:
        return [b for b in _file_batches(source, data_dir) if first <= b.name < end]
    window = timedelta(hours=source.window_hours)
    start, stop = _batch_time(first), _batch_time(end)
    return [b for b in _windows(source, _window_start(start, window), now) if b.window_start < stop]


def _file_batches(source: DriftSource, data_dir: Path) -> list[Batch]:
    batches = []
    for path in batch_files(source, data_dir):
        day = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        batches.append(Batch(path.name, day, day + timedelta(days=1), _reader(path)))
    return batches


def _reader(path: Path) -> Callable[[], pd.DataFrame]:
    return lambda: read_table(path)


def _windows(source: DriftSource, first: datetime, now: datetime) -> list[Batch]:
    """The closed windows from ``first`` (a window's start) until ``now``."""
    window = timedelta(hours=source.window_hours)
    batches: list[Batch] = []
    start = first
    while start + window <= now:
        batches.append(
            Batch(start.strftime(BATCH_TIME_FORMAT), start, start + window, _query(source, start))
        )
        start += window
    return batches


def _query(source: DriftSource, start: datetime) -> Callable[[], pd.DataFrame]:
    end = start + timedelta(hours=source.window_hours)

    def read() -> pd.DataFrame:  # the time column says when, it is not an input
        rows = read_sql(source.query, database_url(source), (source.time_column, start, end))
        return rows.drop(columns=[source.time_column], errors="ignore")

    return read


def database_url(source: DriftSource) -> str:
    """The source's URL with ``${NAME}`` read from the environment.

    Raises:
        ConfigurationError: It names a variable that is not set.
    """
    try:
        return string.Template(source.url).substitute(os.environ)
    except (KeyError, ValueError) as exc:
        raise ConfigurationError(
            f"The drift source's url needs the environment variable {exc}: set it, or write "
            "$$ for a literal dollar sign."
        ) from exc


def _window_start(moment: datetime, window: timedelta) -> datetime:
    """The start of the window holding ``moment``: windows are aligned on midnight UTC."""
    return EPOCH + ((moment.astimezone(UTC) - EPOCH) // window) * window


def _batch_time(name: str) -> datetime:
    """A database batch's name, or a date or time given for a backfill, as a UTC time.

    Raises:
        DriftError: It is neither.
    """
    try:
        moment = datetime.fromisoformat(name.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DriftError(
            f"{name!r} is not a date or time: give one like 2026-11-01 or 2026-11-01T06:00Z."
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- the step ---------------------------------------------------------------------------------


def watermark(store: Store, model: str) -> tuple[str | None, datetime | None]:
    """The last batch monitored for ``model``, and when its source was last looked at."""
    with store.read() as connection:
        row = connection.execute(
            sa.select(drift_watermarks).where(drift_watermarks.c.model == model)
        ).first()
    return (None, None) if row is None else (row.last_batch or None, aware(row.checked_at))


def monitor_model(
    gateway: TrackingGateway,
    store: Store,
    model: str,
    source: DriftSource,
    data_dir: Path,
    now: datetime,
) -> list[str]:
    """Monitor ``model``'s requested backfills, then its batches after the watermark; the
    batches logged, as "model: batch".

    Raises:
        FlightdeckError: A batch cannot be read or compared, or MLflow or the store failed;
            what was logged before stays logged.
    """
    logged: list[str] = []
    budget = MAX_BATCHES_PER_PASS
    for backfill in open_backfills(store, model):
        todo = batches_between(source, data_dir, backfill.first, backfill.end, now)
        for batch in todo[:budget]:
            if _monitor(gateway, store, model, source, batch, now):
                logged.append(f"{model}: {batch.name}")
        if len(todo) > budget:
            return logged  # the rest of this backfill next pass
        budget -= len(todo)
        _finish_backfill(store, backfill, now)
    last, checked_at = watermark(store, model)
    if checked_at and now - checked_at < timedelta(minutes=source.every_minutes):
        return logged
    if source.is_sql and last is not None:
        try:
            _batch_time(last)
        except DriftError:
            last = None  # the source was files before: start again from the last window
    for batch in new_batches(source, data_dir, last, now)[:budget]:
        if _monitor(gateway, store, model, source, batch, now):
            logged.append(f"{model}: {batch.name}")
        _advance(store, model, batch.name, now)
        last = batch.name
    _advance(store, model, last or "", now)  # looked now, even with nothing new
    return logged


def _monitor(
    gateway: TrackingGateway,
    store: Store,
    model: str,
    source: DriftSource,
    batch: Batch,
    now: datetime,
) -> bool:
    """Log ``batch``'s run unless it has one, and audit it once; False for an empty window."""
    run_id = _logged_run(gateway, model, batch.name)
    if run_id is None:
        current = batch.read()
        if source.is_sql and current.empty:
            return False  # no traffic in this window: nothing to compare
        version, result = run_check(
            gateway, model=model, alias=source.alias, current=current, target=source.target or None
        )
        run_id = log_monitoring_run(
            gateway,
            model=model,
            version=version,
            alias=source.alias,
            window_start=batch.window_start,
            window_end=batch.window_end,
            result=result,
            extra_tags={BATCH_TAG: batch.name},
        )
    with store.write() as connection:
        if not _audited(connection, model, batch.name):
            audit.append(
                connection,
                actor="flightdeck",
                action=BATCH_ACTION,
                subject=audit.subject_for(model),
                details={"batch": batch.name, "run_id": run_id},
                now=now,
            )
    return True


def _logged_run(gateway: TrackingGateway, model: str, batch: str) -> str | None:
    """The finished monitoring run already logged for ``batch``, if any (a crash after logging)."""
    experiment_id = gateway.experiment_id(MONITORING_EXPERIMENT)
    if experiment_id is None:
        return None
    query = filters.all_of(
        filters.tag_equals(MODEL_TAG, model),
        filters.tag_equals(BATCH_TAG, batch),
        "attributes.status = 'FINISHED'",
    )
    for run in gateway.search_runs([experiment_id], query, max_results=200).runs:
        if run.tags.get(MODEL_TAG) == model and run.tags.get(BATCH_TAG) == batch:
            return run.run_id
    return None


def _audited(connection: Connection, model: str, batch: str) -> bool:
    found = audit.events(
        connection, subject_prefix=audit.subject_for(model), actions=(BATCH_ACTION,)
    )
    return any(
        e.subject == audit.subject_for(model) and e.details.get("batch") == batch for e in found
    )


def _advance(store: Store, model: str, batch: str, now: datetime) -> None:
    """Move the watermark to ``batch``."""
    with store.write() as connection:
        updated = connection.execute(
            drift_watermarks.update()
            .where(drift_watermarks.c.model == model)
            .values(last_batch=batch, checked_at=now)
        ).rowcount
        if not updated:
            connection.execute(
                drift_watermarks.insert().values(model=model, last_batch=batch, checked_at=now)
            )


# -- backfills --------------------------------------------------------------------------------


def request_backfill(
    store: Store,
    sources: Mapping[str, DriftSource],
    model: str,
    first: str,
    end: str,
    actor: str,
    now: datetime,
) -> Backfill:
    """Ask the next passes to monitor ``model``'s batches from ``first`` up to ``end``.

    Raises:
        DriftError: ``model`` has no source, or the range is empty or not dates for a database.
    """
    source = sources.get(model)
    if source is None:
        raise DriftError(
            f"{model!r} has no [monitoring.sources] entry in flightdeck.toml: add one first."
        )
    if source.is_sql:
        first_time, end_time = _batch_time(first), _batch_time(end)
        empty = end_time <= first_time
    else:
        empty = end <= first
    if empty:
        raise DriftError(f"The range {first} to {end} is empty: the end comes after the start.")
    with store.write() as connection:
        inserted = connection.execute(
            drift_backfills.insert().values(
                model=model,
                first_batch=first,
                end_batch=end,
                requested_by=actor,
                requested_at=now,
                finished_at=None,
            )
        ).inserted_primary_key
        backfill_id = int(inserted[0]) if inserted else 0
        audit.append(
            connection,
            actor=actor,
            action=BACKFILL_REQUESTED,
            subject=audit.subject_for(model),
            details={"backfill_id": backfill_id, "first": first, "end": end},
            now=now,
        )
    return Backfill(backfill_id, model, first, end, actor, now, None)


def open_backfills(store: Store, model: str | None = None) -> list[Backfill]:
    """Backfills not finished yet, oldest first."""
    query = sa.select(drift_backfills).where(drift_backfills.c.finished_at.is_(None))
    if model is not None:
        query = query.where(drift_backfills.c.model == model)
    with store.read() as connection:
        rows = connection.execute(query.order_by(drift_backfills.c.id)).all()
    return [
        Backfill(
            r.id, r.model, r.first_batch, r.end_batch, r.requested_by, aware(r.requested_at), None
        )
        for r in rows
    ]


def _finish_backfill(store: Store, backfill: Backfill, now: datetime) -> None:
    with store.write() as connection:
        finished = connection.execute(
            drift_backfills.update()
            .where(drift_backfills.c.id == backfill.backfill_id)
            .where(drift_backfills.c.finished_at.is_(None))
            .values(finished_at=now)
        ).rowcount
        if finished:
            audit.append(
                connection,
                actor="flightdeck",
                action=BACKFILL_FINISHED,
                subject=audit.subject_for(backfill.model),
                details={"backfill_id": backfill.backfill_id},
                now=now,
            )
