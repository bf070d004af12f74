"""The benchmark's metric-history experiment: 100 runs × 2 metrics × 10,000 steps, seeded once.

It lives in the same SQLite store as the 10,000-run experiment (:mod:`bench.store`) and is
seeded the same way: a real server creates the experiment, then, with the server stopped, the
runs are written straight into SQLite with ``log_batch`` in chunks of 1,000 metric values
(MLflow's limit per batch). The store's marker file gets a ``history`` section only once the
whole seed is checked; an experiment left behind by an interrupted seed is purged and seeded
again.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from bench.store import MARKER_NAME, NEWEST_RUN_AT, Progress, SeededStore
from services.core.processes import free_port, start_mlflow_server

HISTORY_EXPERIMENT_NAME = "bench-history"
HISTORY_KEY = "history"
"""The marker's section for this experiment."""
BATCH_SIZE = 1_000
"""Metric values per ``log_batch``: MLflow's limit."""
STEP_INTERVAL_MS = 1_000
"""Steps are logged one second apart."""


@dataclass(frozen=True)
class HistoryShape:
    """What the history experiment holds; the marker records it so a changed shape reseeds."""

    experiment_name: str = HISTORY_EXPERIMENT_NAME
    runs: int = 100
    metric_keys: tuple[str, ...] = ("train_loss", "val_loss")
    steps: int = 10_000
    random_seed: int = 20_261_125

    @property
    def metric_rows(self) -> int:
        return self.runs * len(self.metric_keys) * self.steps


@dataclass(frozen=True)
class SeededHistory:
    """A complete history experiment on disk."""

    shape: HistoryShape
    experiment_id: str
    seed_seconds: float
    seeded_at: str
    seeded_now: bool


def ensure_history(store: SeededStore, progress: Progress = print) -> SeededHistory:
    """The history experiment in ``store``: reused when the marker says it is complete."""
    shape = HistoryShape()
    cached = _read_history_marker(store.data_dir, shape)
    if cached is not None:
        progress(
            f"Reusing the seeded '{shape.experiment_name}' experiment "
            f"(seeded in {cached.seed_seconds:.0f} s)."
        )
        return cached
    progress(
        f"Seeding '{shape.experiment_name}': {shape.runs} runs × {len(shape.metric_keys)} metrics "
        f"× {shape.steps:,} steps = {shape.metric_rows:,} metric rows (takes several minutes)…"
    )
    started = time.monotonic()
    _purge_experiment(store.data_dir, shape.experiment_name)  # left by an interrupted seed
    experiment_id = _create_experiment(store.data_dir, shape.experiment_name)
    client = MlflowClient(tracking_uri=f"sqlite:///{store.data_dir / 'mlflow.db'}")
    seed_history_runs(client, experiment_id, shape, progress)
    _check_metric_rows(store.data_dir, experiment_id, shape)
    seeded = SeededHistory(
        shape,
        experiment_id,
        seed_seconds=time.monotonic() - started,
        seeded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seeded_now=True,
    )
    _write_history_marker(store.data_dir, seeded)
    progress(f"Seeded {shape.metric_rows:,} metric rows in {seeded.seed_seconds:.0f} s.")
    return seeded


def seed_history_runs(
    client: MlflowClient, experiment_id: str, shape: HistoryShape, progress: Progress = print
) -> None:
    """Create every run, log its histories in batches of :data:`BATCH_SIZE`, terminate it."""
    started = time.monotonic()
    for index in range(shape.runs):
        rng = random.Random(shape.random_seed * 1_000_003 + index)
        start_ms = int(NEWEST_RUN_AT.timestamp() * 1000) - (shape.runs - index) * 86_400_000
        run = client.create_run(
            experiment_id,
            start_time=start_ms,
            tags={"mlflow.user": "bench"},
            run_name=f"history-{index:03d}",
        )
        run_id = run.info.run_id
        client.log_batch(
            run_id, params=[Param("run_index", str(index))], tags=[RunTag("bench", "history")]
        )
        metrics = history_metrics(rng, start_ms, shape)
        for chunk in range(0, len(metrics), BATCH_SIZE):
            client.log_batch(run_id, metrics=metrics[chunk : chunk + BATCH_SIZE])
        end_ms = start_ms + shape.steps * STEP_INTERVAL_MS
        client.set_terminated(run_id, "FINISHED", end_time=end_ms)
        done = index + 1
        if done % 5 == 0 or done == shape.runs:
            elapsed = time.monotonic() - started
            remaining = elapsed / done * (shape.runs - done)
            progress(
                f"  {done:>3}/{shape.runs} runs ({done * len(metrics):,} metric rows)  "
                f"{elapsed:6.0f} s elapsed, about {remaining:.0f} s left"
            )


def history_metrics(rng: random.Random, start_ms: int, shape: HistoryShape) -> list[Metric]:
    """Noisy, decaying loss curves: one value per metric per step, deterministic per run."""
    rate = rng.uniform(2.0, 6.0) / shape.steps
    floor = rng.uniform(0.05, 0.3)
    metrics = []
    for offset, key in enumerate(shape.metric_keys):
        gap = 0.02 * offset
        for step in range(shape.steps):
            value = floor + gap + math.exp(-rate * step) + rng.gauss(0, 0.01)
            timestamp = start_ms + step * STEP_INTERVAL_MS
            metrics.append(Metric(key, round(value, 5), timestamp, step))
    return metrics


def _create_experiment(data_dir: Path, name: str) -> str:
    """Let a real server create the experiment (artifact location as a server makes it)."""
    server = start_mlflow_server(data_dir, free_port())
    try:
        return MlflowClient(tracking_uri=server.url).create_experiment(name)
    finally:
        server.stop()


def _purge_experiment(data_dir: Path, name: str) -> None:
    """Delete an experiment and everything of its runs from SQLite (the server is stopped)."""
    with sqlite3.connect(data_dir / "mlflow.db") as db:
        row = db.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
        if row is None:
            return
        (experiment_id,) = row
        runs = "SELECT run_uuid FROM runs WHERE experiment_id = ?"
        for table in _tables_with_column(db, "run_uuid"):
            if table != "runs":
                db.execute(f"DELETE FROM {table} WHERE run_uuid IN ({runs})", (experiment_id,))
        for table in _tables_with_column(db, "experiment_id"):
            if table != "experiments":
                db.execute(f"DELETE FROM {table} WHERE experiment_id = ?", (experiment_id,))
        db.execute("DELETE FROM experiments WHERE experiment_id = ?", (experiment_id,))
    print(f"  Purged the incomplete '{name}' experiment (id {experiment_id}) of an earlier seed.")


def _tables_with_column(db: sqlite3.Connection, column: str) -> list[str]:
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [t for t in tables if any(c[1] == column for c in db.execute(f"PRAGMA table_info({t})"))]


def _check_metric_rows(data_dir: Path, experiment_id: str, shape: HistoryShape) -> None:
    with sqlite3.connect(data_dir / "mlflow.db") as db:
        (found,) = db.execute(
            "SELECT COUNT(*) FROM metrics WHERE run_uuid IN "
            "(SELECT run_uuid FROM runs WHERE experiment_id = ? AND status = 'FINISHED')",
            (int(experiment_id),),
        ).fetchone()
    if found != shape.metric_rows:
        raise RuntimeError(f"Seeded {found:,} metric rows instead of {shape.metric_rows:,}.")


def _read_history_marker(data_dir: Path, shape: HistoryShape) -> SeededHistory | None:
    try:
        recorded = json.loads((data_dir / MARKER_NAME).read_text())[HISTORY_KEY]
        if recorded["shape"] == json.loads(json.dumps(asdict(shape))):
            return SeededHistory(
                shape,
                str(recorded["experiment_id"]),
                seed_seconds=float(recorded["seed_seconds"]),
                seeded_at=str(recorded["seeded_at"]),
                seeded_now=False,
            )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_history_marker(data_dir: Path, seeded: SeededHistory) -> None:
    """Add the ``history`` section to the store's marker, atomically."""
    marker = data_dir / MARKER_NAME
    recorded = json.loads(marker.read_text())
    recorded[HISTORY_KEY] = {
        "shape": asdict(seeded.shape),
        "experiment_id": seeded.experiment_id,
        "seed_seconds": round(seeded.seed_seconds, 1),
        "seeded_at": seeded.seeded_at,
    }
    partial = marker.with_suffix(".tmp")
    partial.write_text(json.dumps(recorded, indent=2))
    partial.replace(marker)
