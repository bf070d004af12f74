"""Fixtures integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from services.core.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite application store in ``tmp_path``, migrated; disposed after the test."""
    opened = open_store(f"sqlite:///{tmp_path / 'flightdeck.db'}")
    yield opened
    # Close the pool's connections, so no SQLite handle outlives the test's folder.
    opened.engine.dispose()


@pytest.fixture
def client(mlflow_server: ServerProcess) -> MlflowClient:
    """The plain MLflow client on the session's server: how a person or another tool writes."""
    return MlflowClient(mlflow_server.url)


@pytest.fixture
def gateway(mlflow_server: ServerProcess, settings_for: Any) -> TrackingGateway:
    """Flightdeck's gateway on the session's server."""
    return TrackingGateway(settings_for(mlflow_server.url))


def app_as(user: str, page: str | None = None, **query: str) -> AppTest:
    """A new AppTest session of the whole app as ``user`` (development mode), on ``page`` (the
    landing page when None), with ``query`` in the URL. One session per person: after its first
    run AppTest reruns a page without ``app.py``, so the identity is the first run's."""
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.session_state["dev_user"] = user
    at.query_params.update(query)
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def fresh_app(tracking_env: str) -> None:
    """Point the app at the session's server and drop cached reads of earlier tests."""
    st.cache_data.clear()
