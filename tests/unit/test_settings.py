from __future__ import annotations

from pathlib import Path

import pytest

from services.core.errors import ConfigurationError
from services.core.settings import load_settings, mlflow_client_environment


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


# -- credentials in the tracking URI, the audit key, and what is redacted ----------------------

KEY = "a" * 16 + "b" * 16


def test_credentials_in_the_tracking_uri_move_out_of_it(tmp_path: Path) -> None:
    settings = load_settings(
        {"MLFLOW_TRACKING_URI": "https://ada:p%40ss%2Fw0rd@mlflow.example.com:8443/"},
        secrets_path=tmp_path / "x.toml",
    )
    assert settings.tracking_uri == "https://mlflow.example.com:8443"
    assert (settings.mlflow_username, settings.mlflow_password) == ("ada", "p@ss/w0rd")
    assert "w0rd" not in repr(settings)
    env = mlflow_client_environment(settings)
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com:8443"
    assert env["MLFLOW_TRACKING_USERNAME"] == "ada"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "p@ss/w0rd"


def test_explicit_credentials_win_over_those_in_the_uri(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "MLFLOW_TRACKING_URI": "http://uri-user:uri-pass@h:5000",
            "MLFLOW_TRACKING_USERNAME": "env-user",
            "MLFLOW_TRACKING_PASSWORD": "env-pass",
        },
        secrets_path=tmp_path / "x.toml",
    )
    assert settings.tracking_uri == "http://h:5000"
    assert (settings.mlflow_username, settings.mlflow_password) == ("env-user", "env-pass")


def test_a_refused_tracking_uri_is_quoted_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            {"MLFLOW_TRACKING_URI": "ftp://ada:hunter2@files/x"}, secrets_path=tmp_path / "x"
        )
    assert "hunter2" not in str(caught.value)
    assert "ftp://ada:***@files/x" in str(caught.value)


def test_audit_key_comes_from_the_environment_or_the_secrets_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[flightdeck]\naudit_key = "{KEY}"\n')
    assert load_settings({}, secrets_path=secrets).audit_key == KEY
    other = "c" * 40
    assert load_settings({"FLIGHTDECK_AUDIT_KEY": other}, secrets_path=secrets).audit_key == other
    assert load_settings({}, secrets_path=tmp_path / "none.toml").audit_key is None
    assert KEY not in repr(load_settings({}, secrets_path=secrets))


def test_a_short_audit_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="too short") as caught:
        load_settings({"FLIGHTDECK_AUDIT_KEY": "guessable"}, secrets_path=tmp_path / "x.toml")
    assert "guessable" not in str(caught.value)


def test_secret_values_cover_every_configured_credential(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[auth]\ncookie_secret = "cookie-s3cret"\nclient_secret = "oidc-s3cret"\n'
        'client_id = "flightdeck"\n[auth.google]\nclient_secret = "google-s3cret"\n'
    )
    settings = load_settings(
        {
            "MLFLOW_TRACKING_URI": "http://ada:uri-s3cret@h:5000",
            "MLFLOW_TRACKING_TOKEN": "token-s3cret",
            "FLIGHTDECK_AIRFLOW_PASSWORD": "airflow-s3cret",
            "FLIGHTDECK_AUDIT_KEY": KEY,
            "FLIGHTDECK_STORE_URL": "postgresql+psycopg://fd:store-s3cret@db/fd",
            "FLIGHTDECK_PREFECT_API_URL": "http://p:prefect-s3cret@prefect:4200/api",
        },
        secrets_path=secrets,
    )
    assert set(settings.secret_values) == {
        "uri-s3cret",
        "token-s3cret",
        "airflow-s3cret",
        KEY,
        "store-s3cret",
        "prefect-s3cret",
        "cookie-s3cret",
        "oidc-s3cret",
        "google-s3cret",
    }
    assert "flightdeck" not in settings.secret_values  # a client id is not a secret
    for secret in settings.secret_values:
        assert secret not in repr(settings)
        assert secret not in settings.redactor.text(f"failed: {secret}!")
