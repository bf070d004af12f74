"""A tracking URI with ``user:password@`` is used, but its password is never shown or printed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.core.errors import ServerUnreachable
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port
from services.core.settings import EMBEDDED_HOST, PROJECT_ROOT, Settings

pytestmark = pytest.mark.integration

PASSWORD = "uri-pass-s3cret"


@pytest.fixture
def mlflow_environment_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway exports the URI and credentials for the MLflow client: undo it afterwards."""
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI", ""))


@pytest.fixture
def credentialed_uri(
    monkeypatch: pytest.MonkeyPatch, mlflow_server: ServerProcess, mlflow_environment_restored: None
) -> str:
    """The session's server behind ``ada:<password>@``, for this test's process and app."""
    uri = mlflow_server.url.replace("http://", f"http://ada:{PASSWORD}@")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    st.cache_data.clear()
    return uri


def test_the_sidebar_shows_the_tracking_uri_without_its_password(
    credentialed_uri: str, mlflow_server: ServerProcess
) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    shown = [str(element.value) for element in at.sidebar.text]
    assert mlflow_server.url in shown  # the server, reachable with the credentials
    assert any("Reachable" in str(c.value) for c in at.sidebar.caption)
    everything = "\n".join(
        str(getattr(element, "value", ""))
        for kind in ("text", "caption", "markdown", "error", "warning", "info", "code")
        for element in at.get(kind)
    )
    assert PASSWORD not in everything
    assert os.environ["MLFLOW_TRACKING_URI"] == mlflow_server.url  # the client's copy, too


def test_make_run_prints_the_tracking_uri_without_its_password(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the dashboard's port is busy: jobs.run stops after saying
        taken.bind((EMBEDDED_HOST, 0))  # which tracking server it would use
        taken.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "jobs.run"],
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                "MLFLOW_TRACKING_URI": f"https://ada:{PASSWORD}@mlflow.example.com",
                "FLIGHTDECK_PORT": str(taken.getsockname()[1]),
                "FLIGHTDECK_DATA_DIR": str(tmp_path),
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Using the MLflow tracking server at https://mlflow.example.com" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_gateway_errors_name_the_server_without_the_password(
    settings_for: Callable[..., Settings], mlflow_environment_restored: None
) -> None:
    nowhere = f"http://ada:{PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    gateway = TrackingGateway(settings_for(nowhere, FLIGHTDECK_HTTP_MAX_RETRIES="0"))
    for call in (gateway.check_server, gateway.registered_models):
        with pytest.raises(ServerUnreachable) as caught:
            call()
        assert PASSWORD not in str(caught.value)
        assert "MLflow at http://127.0.0.1:" in str(caught.value)
