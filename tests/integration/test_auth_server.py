"""Credentials against MLflow's real basic-auth server: 401 and 403 each explain themselves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from services.core import errors
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port, start_mlflow_server
from services.core.settings import Settings

ADMIN, ADMIN_PASSWORD = "admin", "Adm1n-secret-pw"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("mlflow-auth")
    config = data_dir / "auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{data_dir / 'auth.db'}\n"
        f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    server = start_mlflow_server(
        data_dir,
        free_port(),
        app_name="basic-auth",
        extra_env={
            "MLFLOW_AUTH_CONFIG_PATH": str(config),
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only",
        },
    )
    yield server
    server.stop()


def test_wrong_password_is_a_clear_401(
    auth_server: ServerProcess, settings_for: Callable[..., Settings]
) -> None:
    gateway = TrackingGateway(
        settings_for(
            auth_server.url, MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD="wrong"
        )
    )
    with pytest.raises(errors.AuthenticationFailed, match=r"HTTP 401.*MLFLOW_TRACKING_USERNAME"):
        gateway.check_server()


def test_right_password_passes_the_check(
    auth_server: ServerProcess, settings_for: Callable[..., Settings]
) -> None:
    gateway = TrackingGateway(
        settings_for(
            auth_server.url, MLFLOW_TRACKING_USERNAME=ADMIN, MLFLOW_TRACKING_PASSWORD=ADMIN_PASSWORD
        )
    )
    assert gateway.check_server().version != "unknown"


def test_user_without_permission_gets_a_clear_403(
    auth_server: ServerProcess, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    admin = (ADMIN, ADMIN_PASSWORD)
    created = requests.post(
        f"{auth_server.url}/api/2.0/mlflow/users/create",
        auth=admin,
        json={"username": "viewer-403", "password": "Viewer-pw-12345"},
        timeout=10,
    )
    assert created.ok, created.text
    experiment = requests.post(
        f"{auth_server.url}/api/2.0/mlflow/experiments/create",
        auth=admin,
        json={"name": "private-403"},
        timeout=10,
    ).json()["experiment_id"]
    gateway = TrackingGateway(
        settings_for(
            auth_server.url,
            MLFLOW_TRACKING_USERNAME="viewer-403",
            MLFLOW_TRACKING_PASSWORD="Viewer-pw-12345",
        )
    )
    with pytest.raises(errors.ServerPermissionDenied, match="HTTP 403"):
        gateway.get_experiment(experiment)
