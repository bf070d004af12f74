"""Shared fixtures: a real ``mlflow server`` on loopback, seeded once per session.

There is no mocking of MLflow. Tests that write use their own experiment and model names, so
they stay independent of each other and of the demo data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.processes import ServerProcess, free_port, start_mlflow_server
from services.settings import PROJECT_ROOT, Settings, load_settings


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


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real MLflow tracking server with a temporary SQLite store, stopped by its PID."""
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: unit/, integration/ or e2e/."""
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in {"unit", "integration", "e2e"}:
            item.add_marker(folder)
