"""``make run``'s dashboard environment: development mode for the embedded demo only."""

from __future__ import annotations

from pathlib import Path

from jobs.run import dashboard_environment
from services.core.settings import load_settings


def test_make_run_enables_development_mode_for_the_embedded_demo(tmp_path: Path) -> None:
    settings = load_settings({}, secrets_path=tmp_path / "none.toml")
    env = dashboard_environment(settings, {"PATH": "/bin"})
    assert env["FLIGHTDECK_DEV_MODE"] == "1"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000"


def test_make_run_keeps_development_mode_off_when_asked(tmp_path: Path) -> None:
    settings = load_settings({}, secrets_path=tmp_path / "none.toml")
    assert (
        dashboard_environment(settings, {"FLIGHTDECK_DEV_MODE": "0"})["FLIGHTDECK_DEV_MODE"] == "0"
    )


def test_make_run_with_another_mlflow_server_does_not_enable_development_mode(
    tmp_path: Path,
) -> None:
    external = {"MLFLOW_TRACKING_URI": "https://mlflow.example.com"}
    settings = load_settings(external, secrets_path=tmp_path / "none.toml")
    assert "FLIGHTDECK_DEV_MODE" not in dashboard_environment(settings, external)
