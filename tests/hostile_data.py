"""The nastiest data MLflow accepts, in every field Flightdeck shows or queries.

Generic by design: each *family* is a kind of trouble (both quote kinds, backslashes, SQL
wildcards, line breaks, right-to-left overrides, emoji, zero-width characters, 250+ characters,
markup that would run a script, SQL, whitespace), not one string, so the suite finds the next
bug of the same kind too. :func:`seed_hostile_data` puts each family's value into:

- an experiment's name, and a run's name, user, tag values and param values in it;
- param, metric and tag *keys* (MLflow allows only letters, digits and ``_-. :/`` there, so those
  get :data:`KEY_FAMILIES`: any script's letters, 250 characters, every allowed punctuation);
- a registered model's name (``:`` and ``/`` are refused there, so look-alikes stand in),
  description and tags, its versions' descriptions and tags, and its aliases;
- its monitoring runs (drift over two windows, with feature columns named after the families),
  the reference sample of its training run (so the on-demand check offers it);
- metric values: NaN, infinities, the largest and smallest floats (:data:`NUMBERS`);
- a pending promotion request, a finished retraining job, and a retraining policy and gates in
  the governance file.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient
from mlflow.entities import Metric

from services.core.gateway import TrackingGateway
from services.core.settings import Settings
from services.core.store import Store
from services.core.wiring import Wiring
from services.governance import promotion
from services.governance.auth import Identity
from services.governance.config import load_governance
from services.monitoring.drift import DriftResult, compute_drift
from services.monitoring.runs import log_monitoring_run
from services.retraining import jobs
from services.retraining.base import Backend

SCRIPT_RAN = "__flightdeckScriptRan"
"""Set on ``window`` by every script payload; a page where it is set ran untrusted text."""
_RUN = f"window.{SCRIPT_RAN}=1"
FAMILIES: dict[str, str] = {
    "both quotes": """it's a "quoted" name""",
    "backslashes": "back\\slash \\n \\",
    "SQL wildcards": "100% _sure_ %%",
    "line breaks": "first line\nsecond line\r\nthird",
    "right-to-left override": "invoice \u202egpj.exe\u202c done",
    "emoji": "🚀 rocket 👩\u200d🔬 🇺🇦",
    "zero-width": "zero\u200bwidth\u200djoin\ufeffbom",
    "250+ characters": "long " + "ñ" * 245,
    "markup": (
        f"<script>{_RUN}</script><img src=x onerror={_RUN}> **bold** "
        f"[link](javascript:{_RUN}) <b>html</b> {{{{7*7}}}} ${{7*7}}"
    ),
    "SQL": "x'; DROP TABLE runs; -- \" OR 1=1",
    "punctuation only": "'\"\\%_",
    "whitespace": "  padded\tname  ",
}
"""Each family's value, by family."""
KEY_FAMILIES: dict[str, str] = {
    "other scripts": "ключ_μετρική_指标",
    "250 characters": "k" * 250,
    "allowed punctuation": "a/b:c d.e-f_g",
    "spaces": " spaced key ",
}
"""Param, metric and tag keys: MLflow allows only letters, digits and ``_-. :/`` in them."""
REGISTRY_LOOKALIKES = str.maketrans({":": "\ua789", "/": "\u2044"})
"""MLflow refuses ``:`` and ``/`` in registered model names: look-alike letters stand in."""
NUMBERS = (float("nan"), float("inf"), float("-inf"), 1e308, -5e-324, 0.0, 0.8)
"""Metric values MLflow accepts: each run's primary metric is one of them, history and all."""
OPERATOR = "omar"
"""An operator of the shipped governance file: requests promotions and retraining."""


def registry_name(value: str) -> str:
    """``value`` as a registered model name MLflow accepts."""
    return value.translate(REGISTRY_LOOKALIKES)


@dataclass(frozen=True, slots=True)
class HostileEntities:
    """What one family's value was put into."""

    family: str
    value: str
    experiment_id: str
    run_id: str
    model: str
    request_id: str
    job_id: str


def seed_hostile_data(
    settings: Settings, store: Store, backend: Backend, governance_path: Path
) -> list[HostileEntities]:
    """Seed every family into the MLflow server and the store ``settings`` name.

    Writes ``governance_path``: the shipped roles, plus gates and a retraining policy for each
    hostile model. Returns one record per family, in :data:`FAMILIES` order.
    """
    client = MlflowClient(settings.tracking_uri)
    _write_governance(governance_path, [registry_name(v) for v in FAMILIES.values()])
    gateway = TrackingGateway(settings)
    services = Wiring(
        store=store,
        registry=gateway,
        governance=load_governance(governance_path),
    )
    drift = _drift_result()
    seeded: list[HostileEntities] = []
    for index, (family, value) in enumerate(FAMILIES.items()):
        experiment_id = client.create_experiment(value)
        run_id = _run(client, experiment_id, value, index)
        _run(client, experiment_id, f"{value} (2)", index + 1)
        model = _model(client, registry_name(value), value, run_id)
        _monitoring(gateway, model, drift)
        request = promotion.request_promotion(
            services,
            Identity(OPERATOR, True, "operator"),
            model=model,
            version=2,
            target="champion",
            reason=value,
            rollback_plan=value,
            idempotency_key=f"hostile-data-{index}",
        )
        job = _finished_job(store, backend, model, value, index)
        seeded.append(
            HostileEntities(family, value, experiment_id, run_id, model, request.request_id, job)
        )
    return seeded


def _write_governance(path: Path, models: list[str]) -> None:
    """The shipped governance file plus each hostile model's gates and retraining policy."""
    shipped = (Path(__file__).parents[1] / "flightdeck.toml").read_text(encoding="utf-8")
    lines = [shipped, ""]
    for model in models:
        key = json.dumps(model, ensure_ascii=False)  # a TOML basic string
        lines += [
            f"[gates.models.{key}]",
            'primary_metric = "eval_f1"',
            "",
            f"[retraining.models.{key}]",
            "drift_red_batches = 2",
            'schedule = "0 3 * * 1"',
            "",
        ]
    path.write_text("\n".join(lines), encoding="utf-8")


def _frame(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """A batch whose feature columns are named after the families; two of them drift."""
    rng = np.random.default_rng(seed)
    names = list(FAMILIES.values())
    frame = {name: rng.normal(shift * (i % 2), 1.0, rows) for i, name in enumerate(names[:6])}
    frame[names[6]] = rng.choice(list(FAMILIES.values())[6:], rows)  # hostile category values
    return pd.DataFrame(frame)


def _drift_result() -> DriftResult:
    """A real Evidently drift result on hostile column names, computed once for every model."""
    return compute_drift(_frame(200, 1, 0.0), _frame(200, 2, 2.0))


def _run(client: MlflowClient, experiment_id: str, name: str, seed: int) -> str:
    """A finished run with hostile name, user, tags, params, metric histories and a model
    folder whose signature has hostile columns, and a reference sample for drift checks."""
    value = name
    tags = {"note": value, "mlflow.user": value, **{k: value for k in KEY_FAMILIES.values()}}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(key, 0.5 + 0.01 * step + 0.001 * seed, now + step, step)
        for key in KEY_FAMILIES.values()
        for step in range(5)
    ]
    metrics += [Metric("eval_f1", NUMBERS[seed % len(NUMBERS)], now + s, s) for s in range(5)]
    params = {key: value for key in KEY_FAMILIES.values()}
    client.log_batch(run_id, metrics=metrics)
    for key, param in params.items():
        client.log_param(run_id, key, param)
    mlmodel = {
        "artifact_path": "model",
        "flavors": {},
        "signature": {
            "inputs": json.dumps(
                [{"type": "double", "name": c, "required": True} for c in FAMILIES.values()]
            ),
            "outputs": json.dumps([{"type": "double", "required": True}]),
        },
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "MLmodel"
        path.write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
        client.log_artifact(run_id, str(path), "model")
        reference = Path(folder) / "reference.parquet"
        _frame(200, 1, 0.0).to_parquet(reference, index=False)
        client.log_artifact(run_id, str(reference), "reference")
        notes = Path(folder) / "notes.txt"
        notes.write_text(value, encoding="utf-8")
        client.log_artifact(run_id, str(notes), "hostile")
    client.set_terminated(run_id)
    return run_id


def _model(client: MlflowClient, name: str, value: str, run_id: str) -> str:
    client.create_registered_model(name, tags={"note": value}, description=value)
    for _ in range(2):
        client.create_model_version(
            name, f"runs:/{run_id}/model", run_id, tags={"note": value}, description=value
        )
    client.set_registered_model_alias(name, "champion", "1")
    return name


def _monitoring(gateway: TrackingGateway, model: str, drift: DriftResult) -> None:
    """Two monitored batches a day apart, both with the drift result."""
    end = datetime.now(UTC).replace(microsecond=0)
    for days in (2, 1):
        start = end - timedelta(days=days)
        log_monitoring_run(
            gateway,
            model=model,
            version=1,
            alias="champion",
            window_start=start,
            window_end=start + timedelta(days=1),
            result=drift,
        )


def _finished_job(store: Store, backend: Backend, model: str, value: str, index: int) -> str:
    """A retraining job of the model whose note and log carry the value, finished for real."""
    job = jobs.submit_retraining(
        store,
        backend,
        Identity(OPERATOR, True, "operator"),
        model=model,
        trigger="manual",
        params={"note": value},
        idempotency_key=f"hostile-data-job-{index}",
        command_for=lambda _job_id: [sys.executable, "-c", f"print({value!r})"],
    )
    deadline = time.monotonic() + 60
    while job.is_active and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs.refresh_jobs(store, backend)
        job = jobs.get_job(store, job.job_id)
    assert not job.is_active, job
    return job.job_id
