"""Shared fixtures: a real ``mlflow server`` on loopback, seeded once per session.

There is no mocking of MLflow. Tests that write use their own experiment and model names, so
they stay independent of each other and of the demo data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from services.core.conventions import CHAMPION, TRAINING_PROJECT_TAG
from services.core.processes import ServerProcess, free_port, start_mlflow_server
from services.core.settings import PROJECT_ROOT, Settings, load_settings
from services.core.wiring import Wiring


@pytest.fixture(scope="session", autouse=True)
def isolated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Keep every test's application store out of the developer's ``.flightdeck/``.

    Set for the whole session, so dashboards and jobs started by tests inherit it.
    """
    data_dir = tmp_path_factory.mktemp("flightdeck-data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLIGHTDECK_DATA_DIR", str(data_dir))
        patch.delenv("FLIGHTDECK_STORE_URL", raising=False)
        yield data_dir


@pytest.fixture(scope="session", autouse=True)
def development_mode_on_loopback() -> Iterator[None]:
    """Run the suite's apps as ``make run`` does: development mode, served on loopback.

    Dashboards started by tests inherit the variable and are served on 127.0.0.1
    (``start_dashboard``); AppTest reads ``server.address`` from this process's Streamlit
    config, set here so it does not depend on the folder pytest runs from. Tests of the
    refusals and of real logins override both.
    """
    from streamlit import config

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FLIGHTDECK_DEV_MODE", "1")
        for name in ("FLIGHTDECK_AUTH_HEADER", "FLIGHTDECK_AUTH_SECRET"):
            patch.delenv(name, raising=False)
        config.set_option("server.address", "127.0.0.1", "tests/conftest.py")
        yield


@pytest.fixture(autouse=True)
def own_audit_anchor(monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test anchors its audit log in an MLflow experiment of its own (the anchor names one
    deployment's log), so tests sharing the session's server never see each other's anchors.

    Set in the environment, so the app under AppTest and the processes a test starts use it too.
    """
    name = f"flightdeck-audit-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("FLIGHTDECK_AUDIT_ANCHOR_EXPERIMENT", name)
    return name


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real MLflow tracking server with a temporary SQLite store, stopped by its PID."""
    yield from own_mlflow_server(tmp_path_factory)


def own_mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A new MLflow server. A module whose models would change what other tests see on the
    shared server (red drift puts a model first on the Overview) overrides ``mlflow_server``
    with one of its own, at module scope."""
    data_dir = tmp_path_factory.mktemp("mlflow")
    server = start_mlflow_server(data_dir, free_port())
    yield server
    server.stop()


def run_seed_demo(tracking_uri: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``python -m jobs.seed_demo`` against a server, as ``make run`` does."""
    return subprocess.run(
        [sys.executable, "-m", "jobs.seed_demo"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.fixture(scope="session")
def seeded_server(mlflow_server: ServerProcess) -> ServerProcess:
    """The session's server with the demo data."""
    result = run_seed_demo(mlflow_server.url)
    assert result.returncode == 0, f"seeding failed:\n{result.stdout}\n{result.stderr}"
    return mlflow_server


@pytest.fixture
def tracking_env(monkeypatch: pytest.MonkeyPatch, mlflow_server: ServerProcess) -> str:
    """Point this test's process (and the app under AppTest) at the session's server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    return mlflow_server.url


@pytest.fixture
def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Build settings for a given tracking URI, ignoring the developer's own secrets file."""

    def build(uri: str, **env: str) -> Settings:
        return load_settings(
            {"MLFLOW_TRACKING_URI": uri, **env}, secrets_path=tmp_path / "none.toml"
        )

    return build


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, for experiments and models this test creates."""
    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def champion_model(seeded_server: ServerProcess, unique_name: str) -> str:
    """A copy of the demo's diabetes model whose version 1 is the demo champion: see
    :func:`copy_demo_champion`."""
    copy_demo_champion(seeded_server.url, unique_name)
    return unique_name


def copy_demo_champion(tracking_uri: str, name: str) -> None:
    """Register the demo's :data:`COPIED_PROJECT` champion as version 1 of a new model ``name``,
    and make it that model's champion.

    ``jobs.train --model <name>`` retrains the copy (it carries the training-project tag), in an
    experiment of its own; the retrained version's cross-validated settings beat the demo
    champion on the held-out rows. Its primary metric is ``eval_rmse``: see :func:`copy_gates`.
    """
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias(COPIED_PROJECT, CHAMPION)
    client.create_registered_model(
        name, tags={TRAINING_PROJECT_TAG: COPIED_PROJECT, "primary_metric": "eval_rmse"}
    )
    client.create_model_version(
        name, champion.source, champion.run_id, model_id=champion.source.removeprefix("models:/")
    )
    client.set_registered_model_alias(name, CHAMPION, "1")


COPIED_PROJECT = "diabetes-regressor"


def copy_gates(name: str) -> dict[str, Any]:
    """``flightdeck.toml`` gates for a copy of :data:`COPIED_PROJECT`: its primary metric."""
    return {"gates": {"models": {name: {"primary_metric": "eval_rmse"}}}}


def config_file_with_copy_gates(folder: Path, name: str) -> Path:
    """The project's ``flightdeck.toml`` plus :func:`copy_gates` for ``name``, as a new file."""
    path = folder / "flightdeck.toml"
    path.write_text(
        (PROJECT_ROOT / "flightdeck.toml").read_text(encoding="utf-8")
        + f'\n[gates.models."{name}"]\nprimary_metric = "eval_rmse"\n',
        encoding="utf-8",
    )
    return path


def engine_venv(name: str) -> Path:
    """The venv ``make engines`` built for a retraining engine (``prefect``, ``airflow``).

    ``make test`` sets ``FLIGHTDECK_REQUIRE_ENGINES=1``: there a missing venv fails the test.
    Run by hand without it, the test skips and says how to build the venv.
    """
    venv = PROJECT_ROOT / ".engines" / name
    if (venv / ".installed").is_file():
        return venv
    message = f"the {name} engine's venv is missing: run `make engines` to build {venv}"
    if os.environ.get("FLIGHTDECK_REQUIRE_ENGINES") == "1":
        pytest.fail(message)
    pytest.skip(f"SKIPPED ENGINE TEST: {message}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: unit/, integration/ or e2e/."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in {"unit", "integration", "e2e"}:
            item.add_marker(folder)


def monitoring_frame(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """A batch like a model's inputs: three numbers, a category and a class label.

    With ``shift`` > 0, two numeric columns move by that many standard deviations and the
    category's mix changes, so those three columns drift; ``size`` and ``target`` never do.
    """
    rng = np.random.default_rng(seed)
    sites = ["north", "south", "east"]
    mix = [0.5, 0.3, 0.2] if shift == 0 else [0.1, 0.2, 0.7]
    return pd.DataFrame(
        {
            "alcohol": rng.normal(13.0 + shift, 1.0, rows),
            "acidity": rng.normal(2.0 + shift * 0.5, 0.5, rows),
            "size": rng.normal(100.0, 15.0, rows),
            "site": rng.choice(sites, rows, p=mix),
            "target": rng.integers(0, 3, rows),
        }
    )


@pytest.fixture
def monitored_model(mlflow_server: ServerProcess, unique_name: str) -> str:
    """A registered model whose version 1 (``@champion``) has a training run that logged
    ``reference/reference.parquet`` (see :func:`monitoring_frame`). Returns the model's name."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment(unique_name)
    run = client.create_run(experiment_id, run_name="train")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.parquet"
        monitoring_frame(400, seed=1).to_parquet(path, index=False)
        client.log_artifact(run.info.run_id, str(path), "reference")
    client.set_terminated(run.info.run_id, "FINISHED")
    client.create_registered_model(unique_name)
    client.create_model_version(
        unique_name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    client.set_registered_model_alias(unique_name, "champion", "1")
    return unique_name


def follow_jobs_once(env: Mapping[str, str]) -> None:
    """The control loop's retraining step (follow jobs, judge, propose) once, on the store,
    engine and gates ``env`` configures. Tests of pages run it instead of ``jobs.scheduler``,
    whose other steps would act on every model of the session's shared demo server."""
    from services.core.gateway import TrackingGateway
    from services.core.store import open_store
    from services.governance.config import load_governance
    from services.retraining.engines import backend_for
    from services.retraining.loop import follow_jobs

    settings = load_settings(env)
    store = open_store(settings.store_url)
    try:
        services = Wiring(
            store, TrackingGateway(settings), load_governance(settings.governance_path)
        )
        follow_jobs(services, backend_for(settings))
    finally:
        store.engine.dispose()
