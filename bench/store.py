"""The benchmark's MLflow store: one experiment of 10,000 runs, seeded once and cached on disk.

The store lives in ``bench/.store/`` laid out as :func:`services.core.processes.start_mlflow_server`
expects it: ``mlflow.db`` (SQLite) and ``artifacts/``. Seeding goes in three steps:

1. The real server creates the database and the experiment, so the schema, the Default
   experiment and the ``mlflow-artifacts:/<id>`` artifact location are exactly what a server
   makes.
2. With the server stopped, every run is written straight into SQLite through
   ``MlflowClient("sqlite:///…")``: create, one ``log_batch`` with all params, metrics and tags,
   then terminate. That is 2.5 times faster than the same calls over HTTP
   (:data:`SEEDING_PATH_NOTE`).
3. The run count is checked and a marker file written. Without the marker (a fresh checkout or
   an interrupted seed), the store is wiped and seeded again.

Values are deterministic for a fixed seed; run ids are MLflow's own random UUIDs.
:mod:`bench.history_store` adds a second experiment (long metric histories) to the same store,
recorded in a section of the same marker.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from services.core.processes import free_port, start_mlflow_server

STORE_DIR = Path(__file__).resolve().parent / ".store"
EXPERIMENT_NAME = "bench-10k"
RANDOM_SEED = 20_261_124
MARKER_NAME = "seeded.json"
"""Written last, so its presence means the seed completed."""
SEEDING_PATH_NOTE = (
    "Runs are written straight into SQLite with the server stopped (create, one `log_batch`, "
    "terminate): on a 200-run sample on 2 cores that took 18 ms per run, against 45 ms per run "
    "for the same calls through the server's REST API."
)
"""Why seeding bypasses the server; measured once while writing the benchmark."""

NEWEST_RUN_AT = datetime(2026, 11, 1, tzinfo=UTC)
"""Start of the newest run; fixed so that every seed gives the same store."""
SPAN_MS = 180 * 86_400_000
"""The runs' start times spread over this many milliseconds before ``NEWEST_RUN_AT``."""

FAMILIES = ("xgboost", "lightgbm", "random-forest", "mlp", "logistic-regression")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
ACTIVATIONS = ("relu", "gelu", "tanh", "silu")
SCHEDULERS = ("cosine", "step", "linear", "constant")
FEATURE_SETS = ("base-v3", "base-v4", "base-v4+text", "full-v5")
USERS = ("alice", "bob", "carol", "dmitri", "eve", "farah")
TEAMS = ("churn", "fraud", "search")
SOURCES = ("train.py", "sweep.py", "notebooks/baseline.ipynb")


@dataclass(frozen=True)
class StoreShape:
    """What the seeded store holds; the marker records it so a changed shape reseeds."""

    experiment_name: str = EXPERIMENT_NAME
    runs: int = 10_000
    params_per_run: int = 20
    metrics_per_run: int = 10
    tags_per_run: int = 6
    random_seed: int = RANDOM_SEED


@dataclass(frozen=True)
class SeededStore:
    """A complete store on disk."""

    data_dir: Path
    shape: StoreShape
    experiment_id: str
    seed_seconds: float
    """How long the seed took when it ran (it may have run on an earlier invocation)."""
    seeded_at: str
    """When the seed completed, ISO 8601 in UTC."""
    seeded_now: bool
    """True when this invocation seeded it; False when the cached store was reused."""


@dataclass(frozen=True)
class RunValues:
    """Everything logged for one run."""

    name: str
    start_ms: int
    end_ms: int
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


Progress = Callable[[str], None]


def ensure_store(
    data_dir: Path = STORE_DIR, shape: StoreShape | None = None, progress: Progress = print
) -> SeededStore:
    """The seeded store in ``data_dir``: reused when its marker matches ``shape``, else seeded."""
    shape = shape or StoreShape()
    cached = _read_marker(data_dir, shape)
    if cached is not None:
        progress(f"Reusing the seeded store in {data_dir} (seeded in {cached.seed_seconds:.0f} s).")
        return cached
    progress(f"Seeding {shape.runs:,} runs into {data_dir} (takes a few minutes)…")
    started = time.monotonic()
    shutil.rmtree(data_dir, ignore_errors=True)  # a partial seed is not worth resuming
    experiment_id = _create_experiment_with_server(data_dir, shape.experiment_name)
    client = MlflowClient(tracking_uri=_sqlite_uri(data_dir))
    seed_runs(client, experiment_id, range(shape.runs), shape, progress)
    _check_run_count(data_dir, experiment_id, shape.runs)
    store = SeededStore(
        data_dir,
        shape,
        experiment_id,
        seed_seconds=time.monotonic() - started,
        seeded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seeded_now=True,
    )
    _write_marker(store)
    progress(f"Seeded {shape.runs:,} runs in {store.seed_seconds:.0f} s.")
    return store


def seed_runs(
    client: MlflowClient,
    experiment_id: str,
    indices: range,
    shape: StoreShape,
    progress: Progress = print,
) -> None:
    """Log the runs numbered ``indices``: create, one ``log_batch``, terminate."""
    started = time.monotonic()
    report_every = max(len(indices) // 20, 1)
    for done, index in enumerate(indices, start=1):
        values = run_values(index, shape)
        # mlflow.user at creation fills the run's user_id, as mlflow.start_run does.
        run = client.create_run(
            experiment_id,
            start_time=values.start_ms,
            tags={"mlflow.user": values.tags["mlflow.user"]},
            run_name=values.name,
        )
        run_id = run.info.run_id
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, values.end_ms, 0) for k, v in values.metrics.items()],
            params=[Param(k, v) for k, v in values.params.items()],
            tags=[RunTag(k, v) for k, v in values.tags.items()],
        )
        client.set_terminated(run_id, "FINISHED", end_time=values.end_ms)
        if done % report_every == 0 or done == len(indices):
            elapsed = time.monotonic() - started
            remaining = elapsed / done * (len(indices) - done)
            progress(
                f"  {done:>6,}/{len(indices):,} runs  {elapsed:6.0f} s elapsed, "
                f"about {remaining:.0f} s left"
            )


def run_values(index: int, shape: StoreShape) -> RunValues:
    """The params, metrics, tags and times of run number ``index``; the same for every seed."""
    rng = random.Random(shape.random_seed * 1_000_003 + index)
    family = FAMILIES[index % len(FAMILIES)]
    sweep, trial = divmod(index, 50)
    params = _params(rng, family, index)
    metrics = _metrics(rng, float(params["learning_rate"]), int(params["epochs"]))
    user = USERS[sweep % len(USERS)]
    tags = {
        "mlflow.user": user,
        "mlflow.source.name": SOURCES[sweep % len(SOURCES)],
        "mlflow.source.git.commit": f"{rng.getrandbits(160):040x}",
        "team": TEAMS[sweep % len(TEAMS)],
        "dataset_version": f"2026.{1 + sweep % 11:02d}",
        "sweep": f"sweep-{sweep:03d}",
    }
    newest_ms = int(NEWEST_RUN_AT.timestamp() * 1000)
    # Run 0 is the oldest; later runs start later, with some jitter.
    spacing_ms = SPAN_MS // shape.runs
    start_ms = newest_ms - SPAN_MS + (index + 1) * spacing_ms - rng.randrange(spacing_ms // 2)
    end_ms = start_ms + int(metrics["training_time_s"] * 1000)
    name = f"{family}-s{sweep:03d}-t{trial:02d}"
    _check_counts(params, metrics, tags, shape)
    return RunValues(name, start_ms, end_ms, params, metrics, tags)


def _params(rng: random.Random, family: str, index: int) -> dict[str, str]:
    return {
        "model_family": family,
        "learning_rate": f"{10 ** rng.uniform(-4, -1):.5f}",
        "batch_size": str(rng.choice((32, 64, 128, 256, 512))),
        "epochs": str(rng.randrange(5, 101)),
        "optimizer": rng.choice(OPTIMIZERS),
        "weight_decay": f"{10 ** rng.uniform(-6, -2):.6f}",
        "dropout": f"{rng.uniform(0, 0.5):.2f}",
        "num_layers": str(rng.randrange(1, 9)),
        "hidden_size": str(rng.choice((64, 128, 256, 512, 1024))),
        "activation": rng.choice(ACTIVATIONS),
        "lr_scheduler": rng.choice(SCHEDULERS),
        "warmup_steps": str(rng.choice((0, 100, 500, 1000))),
        "max_depth": str(rng.randrange(3, 13)),
        "n_estimators": str(rng.randrange(100, 2001, 50)),
        "subsample": f"{rng.uniform(0.5, 1):.2f}",
        "colsample_bytree": f"{rng.uniform(0.5, 1):.2f}",
        "gradient_clip_norm": f"{rng.choice((0.5, 1.0, 5.0))}",
        "early_stopping_patience": str(rng.choice((5, 10, 20))),
        "random_seed": str(index),
        "feature_set": rng.choice(FEATURE_SETS),
    }


def _metrics(rng: random.Random, learning_rate: float, epochs: int) -> dict[str, float]:
    # Quality peaks near lr=0.01 so that sorting by a metric means something.
    skill = max(0.0, 1 - abs(-2 - math.log10(learning_rate)) / 2) * rng.uniform(0.6, 1)
    val_accuracy = round(0.70 + 0.25 * skill + rng.gauss(0, 0.01), 4)
    precision = round(min(val_accuracy + rng.gauss(0, 0.02), 0.999), 4)
    recall = round(min(val_accuracy + rng.gauss(0, 0.02), 0.999), 4)
    return {
        "train_loss": round(0.9 - 0.7 * skill + abs(rng.gauss(0, 0.03)), 4),
        "val_loss": round(0.95 - 0.65 * skill + abs(rng.gauss(0, 0.05)), 4),
        "train_accuracy": round(min(val_accuracy + abs(rng.gauss(0.02, 0.01)), 0.999), 4),
        "val_accuracy": val_accuracy,
        "precision": precision,
        "recall": recall,
        "f1": round(2 * precision * recall / (precision + recall), 4),
        "roc_auc": round(min(0.75 + 0.24 * skill + rng.gauss(0, 0.01), 0.999), 4),
        "training_time_s": round(epochs * rng.uniform(5, 60), 1),
        "inference_latency_ms": round(rng.lognormvariate(1.5, 0.4), 2),
    }


def _check_counts(
    params: dict[str, str], metrics: dict[str, float], tags: dict[str, str], shape: StoreShape
) -> None:
    if (len(params), len(metrics), len(tags)) != (
        shape.params_per_run,
        shape.metrics_per_run,
        shape.tags_per_run,
    ):
        raise ValueError("run_values does not produce the store shape; update StoreShape")


def _create_experiment_with_server(data_dir: Path, name: str) -> str:
    """Let a real server create the database and the experiment, then stop it."""
    server = start_mlflow_server(data_dir, free_port())
    try:
        return MlflowClient(tracking_uri=server.url).create_experiment(name)
    finally:
        server.stop()


def _check_run_count(data_dir: Path, experiment_id: str, expected: int) -> None:
    with sqlite3.connect(data_dir / "mlflow.db") as db:
        (found,) = db.execute(
            "SELECT COUNT(*) FROM runs WHERE experiment_id = ? AND status = 'FINISHED'",
            (int(experiment_id),),
        ).fetchone()
    if found != expected:
        raise RuntimeError(f"Seeded {found} finished runs instead of {expected}.")


def _sqlite_uri(data_dir: Path) -> str:
    """The same database the server is started on (see ``start_mlflow_server``)."""
    return f"sqlite:///{data_dir / 'mlflow.db'}"


def _read_marker(data_dir: Path, shape: StoreShape) -> SeededStore | None:
    try:
        recorded = json.loads((data_dir / MARKER_NAME).read_text())
        matches = recorded["shape"] == asdict(shape)
        if matches and (data_dir / "mlflow.db").is_file():
            return SeededStore(
                data_dir,
                shape,
                str(recorded["experiment_id"]),
                seed_seconds=float(recorded["seed_seconds"]),
                seeded_at=str(recorded["seeded_at"]),
                seeded_now=False,
            )
    except (OSError, ValueError, KeyError):
        pass
    return None


def _write_marker(store: SeededStore) -> None:
    marker = store.data_dir / MARKER_NAME
    partial = marker.with_suffix(".tmp")
    partial.write_text(
        json.dumps(
            {
                "shape": asdict(store.shape),
                "experiment_id": store.experiment_id,
                "seed_seconds": round(store.seed_seconds, 1),
                "seeded_at": store.seeded_at,
            },
            indent=2,
        )
    )
    partial.replace(marker)  # atomic: a crash leaves either no marker or a whole one
