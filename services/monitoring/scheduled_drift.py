"""Scheduled drift monitoring: the control loop's step that monitors each new batch once.

Each model in ``[monitoring.sources]`` names a folder or a glob of CSV or Parquet files; a file
is a batch, and batches are taken in name order (name them by date). The store keeps each
model's watermark, the last batch monitored, so a restart neither skips nor repeats one. It is
exactly once even across a crash between logging a batch's run and moving the watermark: each
run carries its batch's name in ``flightdeck.batch``, and a batch with a finished run is not
logged again. A batch that cannot be read stops its model's queue (nothing is skipped) and the
pass reports why, on every pass, until the file is fixed.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.core import filters
from services.core.conventions import BATCH_TAG, MODEL_TAG, MONITORING_EXPERIMENT
from services.core.errors import FlightdeckError
from services.core.gateway import TrackingGateway
from services.core.store import Store, aware, drift_watermarks
from services.governance import audit
from services.governance.config import DriftSource
from services.monitoring.readers import TABLE_SUFFIXES, read_table
from services.monitoring.runs import log_monitoring_run, run_check

BATCH_ACTION = "monitoring.batch_logged"


DATA_DIR_PLACEHOLDER = "{data_dir}"
"""In a source's path, Flightdeck's data folder (``FLIGHTDECK_DATA_DIR``)."""


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


def monitor_new_batches(
    gateway: TrackingGateway,
    store: Store,
    sources: Mapping[str, DriftSource],
    data_dir: Path,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Monitor every source's batches after its watermark; (what was logged, what failed)."""
    logged: list[str] = []
    problems: list[str] = []
    for model, source in sorted(sources.items()):
        try:
            logged += monitor_model(gateway, store, model, source, data_dir, now)
        except FlightdeckError as exc:
            problems.append(f"{model}: {exc}")
    return logged, problems


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
    """Monitor ``model``'s batches after its watermark; the batches logged, as "model: file"."""
    last, checked_at = watermark(store, model)
    if checked_at and now - checked_at < timedelta(minutes=source.every_minutes):
        return []
    logged: list[str] = []
    for path in batch_files(source, data_dir):
        if last is not None and path.name <= last:
            continue
        run_id = _logged_run(gateway, model, path.name)
        if run_id is None:
            version, result = run_check(
                gateway,
                model=model,
                alias=source.alias,
                current=read_table(path),
                target=source.target or None,
            )
            start = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(
                hour=0, minute=0, second=0, microsecond=0
            )
            run_id = log_monitoring_run(
                gateway,
                model=model,
                version=version,
                alias=source.alias,
                window_start=start,
                window_end=start + timedelta(days=1),
                result=result,
                extra_tags={BATCH_TAG: path.name},
            )
        _advance(store, model, path.name, run_id, now)
        last = path.name
        logged.append(f"{model}: {path.name}")
    _advance(store, model, last or "", None, now)  # looked now, even with nothing new
    return logged


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


def _advance(store: Store, model: str, batch: str, run_id: str | None, now: datetime) -> None:
    """Move the watermark to ``batch`` and audit its run once, in one transaction."""
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
        if run_id is not None and not _audited(connection, model, batch):
            audit.append(
                connection,
                actor="flightdeck",
                action=BATCH_ACTION,
                subject=audit.subject_for(model),
                details={"batch": batch, "run_id": run_id},
                now=now,
            )
