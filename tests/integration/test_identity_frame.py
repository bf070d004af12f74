"""The frame through AppTest: without a trusted identity, no page runs and nothing is listed.

The browser tests (tests/e2e/test_identity_fails_closed.py, test_oidc_login.py) prove the same
against real servers; these run in seconds and pin which message each case shows.
"""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from services.core.settings import PROJECT_ROOT

APP = str(PROJECT_ROOT / "app.py")


def run_frame(monkeypatch: pytest.MonkeyPatch, **env: str) -> AppTest:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # never reached
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["dev_user"] = "ada"  # development mode's admin must not leak through
    return at


def served_nothing(at: AppTest) -> str:
    assert not at.exception, at.exception
    assert len(at.sidebar) == 0
    texts = " ".join(e.value for e in [*at.error, *at.info])
    assert "Cannot reach MLflow" not in texts  # no page, not even the frame's MLflow check
    return texts


def test_without_development_mode_no_page_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_frame(monkeypatch, FLIGHTDECK_DEV_MODE="0").run()
    assert "Flightdeck has no login configured" in served_nothing(at)


def test_a_proxy_header_without_a_secret_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = run_frame(monkeypatch, FLIGHTDECK_AUTH_HEADER="X-Forwarded-Email").run()
    assert "without `FLIGHTDECK_AUTH_SECRET`" in served_nothing(at)


def test_a_request_without_the_proxy_secret_sees_no_page(monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_frame(
        monkeypatch,
        FLIGHTDECK_AUTH_HEADER="X-Forwarded-Email",
        FLIGHTDECK_AUTH_SECRET="a-secret-of-twenty-chars",
    ).run()
    assert "secret header is missing" in served_nothing(at)


def test_with_oidc_a_visitor_not_logged_in_sees_only_the_login_screen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = run_frame(monkeypatch)
    at.secrets["auth"] = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "flightdeck",
        "client_secret": "y",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    at.run()
    assert "Log in to use Flightdeck." in served_nothing(at)
    assert [b.label for b in at.button] == ["Log in"]


def test_development_mode_on_loopback_runs_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    at = run_frame(monkeypatch).run()
    assert not at.exception, at.exception
    assert "Cannot reach MLflow" in " ".join(e.value for e in at.error)
    assert at.sidebar.selectbox(key="dev_user").value == "ada"
