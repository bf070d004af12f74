"""The demo data grown to a fleet, for issue 15's pages that have no MLflow counterpart: the
Overview with 50 models, Monitoring with 90 daily batches, and a promotion's decision page.

``bench/.store-fleet`` starts as a copy of the demo store (``make run``'s data, seeded once into
``bench/.store-demo``) and adds:

- ``wine-classifier-90-days``: the wine model's four versions again, monitored for 90 days (the
  demo's drift and retraining story after 60 quiet days), through the demo seed's own code;
- 46 more models with the same versions and aliases, each with the last 30 of those batches
  (their Evidently reports left out: the Overview reads only the runs), so the Overview shows 50;
- a Flightdeck store (``flightdeck.db``) with one open promotion request, which every dashboard
  on this store starts with.

A marker records that seeding finished, so an interrupted seed starts over.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlflow.tracking import MlflowClient

from jobs.seed_demo import DRIFT_WORKERS, SEED_TAG, demo_batches, log_demo_batches
from jobs.training import PROJECTS
from services.core import wiring
from services.core.conventions import CHALLENGER, CHAMPION
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port, start_mlflow_server
from services.core.settings import PROJECT_ROOT, load_settings
from services.governance import promotion
from services.governance.auth import Identity
from services.monitoring.drift import compute_drift
from services.monitoring.runs import log_monitoring_run

DEMO_DIR = PROJECT_ROOT / "bench" / ".store-demo"
FLEET_DIR = PROJECT_ROOT / "bench" / ".store-fleet"
MARKER = "fleet.json"
FLEET_MODELS = 50
LONG_MODEL = "wine-classifier-90-days"
LONG_DAYS = 90
FILLER_DAYS = 30
TRIMMED_REPORT = "<p>Report left out by the benchmark's fleet seed.</p>"
LOG_THREADS = 8


@dataclass(frozen=True)
class SeededFleet:
    """What the fleet benchmark opens."""

    models: int
    long_model: str
    long_days: int
    request_id: str
    """The open promotion request, in :attr:`store_path`."""
    seed_seconds: float

    @property
    def store_path(self) -> Path:
        return FLEET_DIR / "flightdeck.db"


def start_demo_server(data_dir: Path = DEMO_DIR) -> ServerProcess:
    """An MLflow server on the demo data ``make run`` seeds (``python -m jobs.seed_demo``, run
    once into ``data_dir``)."""
    server = start_mlflow_server(data_dir, free_port())
    if not (data_dir / "seeded").exists():
        print("Seeding the demo data (python -m jobs.seed_demo)…", flush=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": server.url}
        subprocess.run([sys.executable, "-m", "jobs.seed_demo"], env=env, check=True)
        (data_dir / "seeded").write_text("1", encoding="utf-8")
    return server


def ensure_fleet() -> SeededFleet:
    """The fleet store: reused, or made now from the demo store (a few minutes)."""
    marker = FLEET_DIR / MARKER
    if marker.exists():
        print(f"Reusing the fleet benchmark's store ({FLEET_DIR}).", flush=True)
        return SeededFleet(**json.loads(marker.read_text(encoding="utf-8")))
    started = time.monotonic()
    start_demo_server().stop()  # seeds the demo once
    shutil.rmtree(FLEET_DIR, ignore_errors=True)
    shutil.copytree(DEMO_DIR, FLEET_DIR, ignore=shutil.ignore_patterns("*.log", "seeded"))
    server = start_mlflow_server(FLEET_DIR, free_port())
    try:
        request_id = _seed(server.url)
    finally:
        server.stop()
    fleet = SeededFleet(FLEET_MODELS, LONG_MODEL, LONG_DAYS, request_id, time.monotonic() - started)
    marker.write_text(json.dumps(asdict(fleet)), encoding="utf-8")
    print(f"Seeded the fleet store in {fleet.seed_seconds:.0f} s.", flush=True)
    return fleet


def _seed(url: str) -> str:
    client = MlflowClient(tracking_uri=url)
    wine = PROJECTS[0]
    versions = sorted(
        client.search_model_versions(f"name='{wine.model}'"), key=lambda v: int(v.version)
    )
    existing = len(client.search_registered_models(max_results=1000))
    fillers = [f"fleet-model-{i:02d}" for i in range(FLEET_MODELS - existing - 1)]
    print(f"Registering {LONG_MODEL} and {len(fillers)} more models…", flush=True)
    for name in (LONG_MODEL, *fillers):
        client.create_registered_model(name, description=f"A copy of {wine.model}.")
        for version in versions:
            source = version.source or ""
            logged_model = (
                source.removeprefix("models:/") if source.startswith("models:/") else None
            )
            client.create_model_version(name, source, version.run_id, model_id=logged_model)
        client.set_registered_model_alias(name, CHAMPION, "3")
        client.set_registered_model_alias(name, CHALLENGER, "4")

    gateway = TrackingGateway(load_settings({"MLFLOW_TRACKING_URI": url}))
    now = datetime.now(UTC)
    batches = demo_batches(gateway, replace(wine, model=LONG_MODEL), now, days=LONG_DAYS)
    print(f"Computing drift on {len(batches)} batches…", flush=True)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=DRIFT_WORKERS, mp_context=context) as workers:
        futures = [
            workers.submit(compute_drift, b.reference, b.frame, target="target") for b in batches
        ]
        log_demo_batches(gateway, batches, futures, now)
        last = [(b, f.result()) for b, f in zip(batches, futures, strict=True)][-FILLER_DAYS:]

    print(f"Logging {FILLER_DAYS} batches for each of {len(fillers)} models…", flush=True)

    def log_filler(name: str) -> None:
        for batch, result in last:
            log_monitoring_run(
                gateway,
                model=name,
                version=batch.version,
                alias=CHAMPION,
                window_start=batch.window_start,
                window_end=batch.window_start + timedelta(days=1),
                result=replace(result, html=TRIMMED_REPORT, snapshot_json="{}"),
                started_at=batch.window_start + timedelta(days=1, minutes=30),
                extra_tags={SEED_TAG: "fleet"},
            )

    with ThreadPoolExecutor(LOG_THREADS) as threads:
        list(threads.map(log_filler, fillers))
    return _open_request(url)


def _open_request(url: str) -> str:
    """One pending request in the fleet's own Flightdeck store: v4 of the 90-day model to
    @champion."""
    settings = load_settings({"MLFLOW_TRACKING_URI": url, "FLIGHTDECK_DATA_DIR": str(FLEET_DIR)})
    services = wiring.build(settings)
    request = promotion.request_promotion(
        services,
        Identity("omar", False, "operator"),
        model=LONG_MODEL,
        version=4,
        target=CHAMPION,
        reason="Retrained on the last 30 days after the drift alarm.",
        rollback_plan="Point @champion back at v3.",
        idempotency_key="bench-fleet-request",
    )
    with sqlite3.connect(FLEET_DIR / "flightdeck.db") as db:  # a copy of the file holds it all
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return request.request_id
