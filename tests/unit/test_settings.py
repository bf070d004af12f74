from __future__ import annotations

from pathlib import Path

import pytest

from services.errors import ConfigurationError
from services.settings import load_settings, mlflow_client_environment


def test_defaults_use_the_embedded_server_on_loopback(tmp_path: Path) -> None:
    settings = load_settings({}, secrets_path=tmp_path / "missing.toml")
    assert settings.embedded
    assert settings.tracking_uri == "http://127.0.0.1:5000"
    assert settings.data_dir.name == ".flightdeck"
    assert settings.http_timeout_s == 10
    assert settings.http_max_retries == 2
    assert settings.runs_page_size == 200


def test_tracking_uri_from_environment_disables_the_embedded_server(tmp_path: Path) -> None:
    settings = load_settings(
        {"MLFLOW_TRACKING_URI": "https://mlflow.example.com/"},
        secrets_path=tmp_path / "missing.toml",
    )
    assert not settings.embedded
    assert settings.tracking_uri == "https://mlflow.example.com"


def test_environment_overrides_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[mlflow]\ntracking_uri = "http://from-secrets:5000"\nusername = "s"\n'
        "[flightdeck]\nhttp_timeout = 4\n"
    )
    from_file = load_settings({}, secrets_path=secrets)
    assert from_file.tracking_uri == "http://from-secrets:5000"
    assert from_file.http_timeout_s == 4
    assert from_file.mlflow_username == "s"
    overridden = load_settings(
        {"MLFLOW_TRACKING_URI": "http://env:1", "FLIGHTDECK_HTTP_TIMEOUT": "7"},
        secrets_path=secrets,
    )
    assert overridden.tracking_uri == "http://env:1"
    assert overridden.http_timeout_s == 7


@pytest.mark.parametrize(
    "uri", ["ftp://host/x", "file:///tmp/mlruns", "sqlite:///x.db", "localhost:5000", "http://"]
)
def test_wrong_uri_scheme_is_refused_with_what_would_work(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ConfigurationError, match=r"http://host:port"):
        load_settings({"MLFLOW_TRACKING_URI": uri}, secrets_path=tmp_path / "missing.toml")


def test_more_than_two_retries_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="0, 1 or 2"):
        load_settings({"FLIGHTDECK_HTTP_MAX_RETRIES": "7"}, secrets_path=tmp_path / "x.toml")


def test_malformed_number_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="FLIGHTDECK_PORT"):
        load_settings({"FLIGHTDECK_PORT": "eighty"}, secrets_path=tmp_path / "x.toml")


def test_malformed_secrets_file_names_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("[mlflow\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings({}, secrets_path=secrets)


def test_client_environment_sets_timeout_and_retries_and_hides_empty_credentials(
    tmp_path: Path,
) -> None:
    settings = load_settings(
        {"FLIGHTDECK_HTTP_TIMEOUT": "9", "FLIGHTDECK_HTTP_MAX_RETRIES": "1"},
        secrets_path=tmp_path / "x.toml",
    )
    env = mlflow_client_environment(settings)
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "9"
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
    assert "MLFLOW_TRACKING_PASSWORD" not in env


def test_credentials_never_appear_in_repr(tmp_path: Path) -> None:
    settings = load_settings(
        {"MLFLOW_TRACKING_PASSWORD": "hunter2", "MLFLOW_TRACKING_TOKEN": "t0k"},
        secrets_path=tmp_path / "x.toml",
    )
    assert "hunter2" not in repr(settings)
    assert "t0k" not in repr(settings)


def test_development_mode_and_the_proxy_are_off_unless_configured(tmp_path: Path) -> None:
    settings = load_settings({}, secrets_path=tmp_path / "missing.toml")
    assert not settings.dev_mode
    assert settings.auth_header is None and settings.auth_secret is None
    assert settings.auth_secret_header == "X-Flightdeck-Proxy-Secret"


@pytest.mark.parametrize(("raw", "enabled"), [("1", True), ("true", True), ("0", False)])
def test_development_mode_from_the_environment(tmp_path: Path, raw: str, enabled: bool) -> None:
    settings = load_settings({"FLIGHTDECK_DEV_MODE": raw}, secrets_path=tmp_path / "x.toml")
    assert settings.dev_mode is enabled


def test_development_mode_with_an_unclear_value_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="FLIGHTDECK_DEV_MODE must be 1 or 0"):
        load_settings({"FLIGHTDECK_DEV_MODE": "maybe"}, secrets_path=tmp_path / "x.toml")


def test_proxy_settings_and_development_mode_from_the_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[flightdeck]\nauth_header = "X-Forwarded-Email"\nauth_secret_header = "X-Proof"\n'
        'auth_secret = "from-the-secrets-file"\ndev_mode = true\n'
    )
    settings = load_settings({}, secrets_path=secrets)
    assert settings.auth_header == "X-Forwarded-Email"
    assert settings.auth_secret_header == "X-Proof"
    assert settings.auth_secret == "from-the-secrets-file"
    assert settings.dev_mode
    assert "from-the-secrets-file" not in repr(settings)
