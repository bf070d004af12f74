"""Gate inputs from the gated: a champion score that a challenger's own run logged counts only
when a Flightdeck retraining job on record in the store wrote that run.

Real MLflow server, real SQLite store, the real local engine. The "training" is a small script
that logs what ``jobs.train`` logs for a comparison: ``eval_rmse``, ``champion_eval_rmse`` and
``flightdeck.compared_with_version``. Run as a Flightdeck job it is vouched for; run by anyone
else, with any ``flightdeck.job_id`` tag it likes, it is not.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from mlflow import MlflowClient

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import load_settings
from services.core.store import Store, open_store
from services.core.wiring import Wiring
from services.governance import promotion
from services.governance.auth import Identity
from services.governance.config import parse_governance
from services.governance.gates import GateResult, evaluate_candidate
from services.retraining import jobs
from services.retraining.local import LocalBackend
from services.retraining.loop import follow_jobs
from tests.conftest import config_file_with_copy_gates, copy_gates
from tests.integration.conftest import app_as

pytestmark = pytest.mark.integration

OPERATOR = Identity("omar", True, "operator")
CHAMPION_RMSE = 50.0
"""The champion run's own held-out score (lower is better)."""
CHALLENGER_RMSE = 55.0
"""Every challenger here is worse than that on its own evaluation..."""
CLAIMED_CHAMPION_RMSE = 60.0
"""...and claims the champion scored even worse on the challenger's held-out rows."""

CHALLENGER_SCRIPT = """
import os, sys
from mlflow import MlflowClient

experiment, model, rmse, claimed, forged_job = sys.argv[1:6]
job = os.environ.get("FLIGHTDECK_JOB_ID") or forged_job
client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
tags = {"flightdeck.compared_with_version": "1", "flightdeck.job_id": job}
run = client.create_run(experiment, tags=tags).info.run_id
client.log_metric(run, "eval_rmse", float(rmse))
client.log_metric(run, "champion_eval_rmse", float(claimed))
client.set_terminated(run)
client.create_model_version(model, f"runs:/{run}/model", run, tags={"flightdeck.job_id": job})
"""


def challenger_command(url: str, experiment: str, model: str, forged_job: str = "") -> list[str]:
    return [
        sys.executable,
        "-c",
        CHALLENGER_SCRIPT,
        experiment,
        model,
        str(CHALLENGER_RMSE),
        str(CLAIMED_CHAMPION_RMSE),
        forged_job or uuid.uuid4().hex,
    ]


def log_challenger_outside_flightdeck(url: str, experiment: str, model: str, job: str) -> None:
    """What anyone who can log to MLflow can do: the same run, with a ``flightdeck.job_id`` tag
    of their choosing, and no job of Flightdeck's running it."""
    subprocess.run(
        challenger_command(url, experiment, model, job),
        env={**os.environ, "MLFLOW_TRACKING_URI": url},
        check=True,
        timeout=120,
    )


def model_with_champion(client: MlflowClient, name: str) -> str:
    """``name`` with version 1, whose run scored ``eval_rmse`` = 50, as ``@champion``; returns
    the experiment the challengers log to."""
    experiment = client.create_experiment(f"{name}-runs")
    client.create_registered_model(name)
    run = client.create_run(experiment).info.run_id
    client.log_metric(run, "eval_rmse", CHAMPION_RMSE)
    client.set_terminated(run)
    client.create_model_version(name, f"runs:/{run}/model", run)
    client.set_registered_model_alias(name, "champion", "1")
    return experiment


def services_for(store: Store, url: str, settings_for: Any, name: str) -> Wiring:
    """The model's gates: only the improvement of ``eval_rmse`` (lower is better) matters."""
    config = copy_gates(name)
    config["gates"]["models"][name].update(
        {
            "min_improvement": 0.0,
            "require_compatible_signature": False,
            "block_on_drift_alarm": False,
        }
    )
    return Wiring(
        store=store,
        registry=TrackingGateway(settings_for(url)),
        governance=parse_governance(config),
    )


def improvement(services: Wiring, name: str, version: int) -> GateResult:
    return evaluate_candidate(services, name, version, 1)[0]


def run_as_flightdeck_job(
    services: Wiring, backend: LocalBackend, url: str, experiment: str, name: str
) -> jobs.RetrainingJob:
    """The challenger logged by a real retraining job: recorded in the store, run by the local
    engine, which hands it ``FLIGHTDECK_JOB_ID``."""
    job = jobs.submit_retraining(
        services.store,
        backend,
        OPERATOR,
        model=name,
        trigger="manual",
        params={},
        idempotency_key=f"gate-inputs-{name}",
        command_for=lambda _job_id: challenger_command(url, experiment, name),
        env={"MLFLOW_TRACKING_URI": url},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        jobs.refresh_jobs(services.store, backend)
        job = jobs.get_job(services.store, job.job_id)
        if not job.is_active:
            break
        time.sleep(0.2)
    assert job.status == "succeeded", (job.status, job.status_reason)
    return job


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "jobs", grace_s=2.0)


def test_a_champion_score_the_challenger_logged_itself_is_self_reported_and_does_not_pass(
    mlflow_server: ServerProcess, store: Store, settings_for: Any, unique_name: str
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment = model_with_champion(client, unique_name)
    services = services_for(store, mlflow_server.url, settings_for, unique_name)
    # A job id that no retraining job in the store has.
    log_challenger_outside_flightdeck(mlflow_server.url, experiment, unique_name, "f" * 32)

    gate = improvement(services, unique_name, 2)

    assert not gate.passed, gate  # 50 → 55 on the runs' own evaluations: worse
    assert gate.detail.startswith("50 → 55"), gate.detail
    assert "same held-out data" not in gate.detail
    assert "champion_eval_rmse = 60" in gate.self_reported, gate
    assert "no Flightdeck retraining job on record" in gate.self_reported


def test_a_comparison_written_by_a_flightdeck_retraining_job_on_record_is_trusted(
    mlflow_server: ServerProcess,
    store: Store,
    backend: LocalBackend,
    settings_for: Any,
    unique_name: str,
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment = model_with_champion(client, unique_name)
    services = services_for(store, mlflow_server.url, settings_for, unique_name)
    job = run_as_flightdeck_job(services, backend, mlflow_server.url, experiment, unique_name)

    gate = improvement(services, unique_name, 2)

    assert gate.passed, gate  # 60 → 55 on the same held-out rows, measured by the job
    assert gate.detail.startswith("60 → 55"), gate.detail
    assert f"same held-out data (retraining job {job.job_id[:8]})" in gate.detail
    assert not gate.self_reported


def test_a_real_jobs_id_on_another_run_is_not_trusted(
    mlflow_server: ServerProcess,
    store: Store,
    backend: LocalBackend,
    settings_for: Any,
    unique_name: str,
) -> None:
    """Job ids are visible in the UI; a run that copies one is not the run that job wrote."""
    client = MlflowClient(mlflow_server.url)
    experiment = model_with_champion(client, unique_name)
    services = services_for(store, mlflow_server.url, settings_for, unique_name)
    job = run_as_flightdeck_job(services, backend, mlflow_server.url, experiment, unique_name)
    follow_jobs(services, backend)  # the loop judges v2 and records the job's MLflow run
    assert jobs.get_job(store, job.job_id).mlflow_run_id is not None

    log_challenger_outside_flightdeck(mlflow_server.url, experiment, unique_name, job.job_id)
    gate = improvement(services, unique_name, 3)

    assert not gate.passed, gate
    assert gate.detail.startswith("50 → 55"), gate.detail
    assert "champion_eval_rmse = 60" in gate.self_reported


def test_a_real_job_of_another_model_does_not_vouch_for_this_one(
    mlflow_server: ServerProcess,
    store: Store,
    backend: LocalBackend,
    settings_for: Any,
    unique_name: str,
) -> None:
    client = MlflowClient(mlflow_server.url)
    other = f"{unique_name}-other"
    other_experiment = model_with_champion(client, other)
    other_job = run_as_flightdeck_job(
        services_for(store, mlflow_server.url, settings_for, other),
        backend,
        mlflow_server.url,
        other_experiment,
        other,
    )
    experiment = model_with_champion(client, unique_name)
    services = services_for(store, mlflow_server.url, settings_for, unique_name)

    log_challenger_outside_flightdeck(mlflow_server.url, experiment, unique_name, other_job.job_id)

    assert not improvement(services, unique_name, 2).passed


def test_the_decision_page_marks_a_self_reported_comparison(
    mlflow_server: ServerProcess,
    tracking_env: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    settings_for: Any,
    unique_name: str,
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment = model_with_champion(client, unique_name)
    log_challenger_outside_flightdeck(mlflow_server.url, experiment, unique_name, "f" * 32)
    monkeypatch.setenv("FLIGHTDECK_CONFIG", str(config_file_with_copy_gates(tmp_path, unique_name)))
    app_store = open_store(load_settings().store_url)  # the one the app under test uses
    services = services_for(app_store, mlflow_server.url, settings_for, unique_name)
    request = promotion.request_promotion(
        services,
        OPERATOR,
        model=unique_name,
        version=2,
        target="champion",
        reason="it says it beats the champion",
        rollback_plan="back to v1",
        idempotency_key=unique_name,
    )
    app_store.engine.dispose()
    st.cache_data.clear()

    at = app_as("ben", "pages/promotions.py", request=request.request_id)

    captions = [c.value for c in at.caption]
    assert any("Self-reported, not trusted" in c and "60" in c for c in captions), captions
    assert any(c.startswith("50 → 55") for c in captions), captions
    approve = next(b for b in at.button if b.label == "Approve and promote")
    assert approve.disabled  # a failing gate: only an admin's override could approve it
