"""What issue 15's page benchmark opens besides the runs: models with 50 and 500 versions, 200
registered models, and a run with 500 params and 100 metrics.

Seeded once through the bench server's REST API (the registry has no faster path) and found
again by name; a marker records that seeding finished, so an interrupted seed starts over.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from bench.store import SeededStore

MARKER = "pages.json"
MODEL_SIZES = (50, 500)
FLEET_MODELS = 200
WIDE_PARAMS = 500
WIDE_METRICS = 100
WIDE_EXPERIMENT = "bench-wide"


@dataclass(frozen=True)
class SeededPages:
    """Names and ids of what the page benchmark opens."""

    models: dict[str, int]
    """Model name -> its number of versions."""
    fleet_prefix: str
    fleet_models: int
    wide_run_id: str
    wide_experiment_id: str
    seed_seconds: float


def ensure_pages(url: str, store: SeededStore) -> SeededPages:
    """The seeded registry and wide run on the server at ``url``: reused, or seeded now."""
    marker = store.data_dir / MARKER
    if marker.exists():
        seeded = SeededPages(**json.loads(marker.read_text(encoding="utf-8")))
        print(f"Reusing the page benchmark's models and wide run ({marker}).", flush=True)
        return seeded
    started = time.monotonic()
    client = MlflowClient(tracking_uri=url)
    sources = client.search_runs([store.experiment_id], max_results=max(MODEL_SIZES))
    models: dict[str, int] = {}
    for size in MODEL_SIZES:
        name = f"bench-model-{size}"
        print(f"Registering {name} with {size} versions…", flush=True)
        _delete_model(client, name)
        client.create_registered_model(name, description=f"Benchmark model, {size} versions")
        for run in sources[:size]:
            client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_registered_model_alias(name, "champion", str(size - 1))
        models[name] = size
    prefix = "bench-fleet-"
    print(f"Registering {FLEET_MODELS} models…", flush=True)
    for index in range(FLEET_MODELS):
        name = f"{prefix}{index:03d}"
        _delete_model(client, name)
        client.create_registered_model(name)
        run = sources[index % len(sources)]
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    wide_experiment = client.get_experiment_by_name(WIDE_EXPERIMENT)
    experiment_id = (
        wide_experiment.experiment_id
        if wide_experiment
        else client.create_experiment(WIDE_EXPERIMENT)
    )
    run_id = client.create_run(experiment_id, run_name="wide-run").info.run_id
    params = [Param(f"param_{i:03d}", f"value-{i}") for i in range(WIDE_PARAMS)]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start : start + 100])
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"metric_{i:03d}", i / WIDE_METRICS + step / 100, now + step, step)
        for i in range(WIDE_METRICS)
        for step in range(10)
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    client.set_terminated(run_id)
    seeded = SeededPages(
        models, prefix, FLEET_MODELS, run_id, experiment_id, time.monotonic() - started
    )
    marker.write_text(json.dumps(asdict(seeded)), encoding="utf-8")
    print(f"Seeded the page benchmark's registry in {seeded.seed_seconds:.0f} s.", flush=True)
    return seeded


def _delete_model(client: MlflowClient, name: str) -> None:
    """Remove what an interrupted seed left under ``name``."""
    with contextlib.suppress(MlflowException):  # absent, the usual case
        client.delete_registered_model(name)
