"""A real login end to end: Streamlit's ``st.login`` against a real OpenID Connect provider.

The provider is ``oidc-provider-mock`` (a separate process on loopback, PyPI); the dashboard
reads an ``[auth]`` section from a secrets file of its own. The browser logs in as a member of a
group mapped to the approver role and approves a real promotion request on the session's MLflow
server, logs out, and an impostor whose display name and unverified email are an admin's stays a
viewer. Development mode is enabled for this dashboard too: a configured login must win.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from playwright.sync_api import Browser, Page, expect

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess, free_port, start_dashboard
from services.core.settings import load_settings
from services.core.store import open_store
from services.core.wiring import Wiring
from services.governance import promotion
from services.governance.auth import Identity
from services.governance.config import load_governance
from tests.e2e.conftest import wait_until_ready

LEAD = ("lead-7", {"email": "carol@example.com", "email_verified": True, "groups": ["ml-leads"]})
"""A team lead: approver through the ``ml-leads`` group, nothing else grants her a role."""
IMPOSTOR = (
    "impostor-9",
    {
        "email": "ada@example.com",  # the admin's address, but not verified
        "email_verified": False,
        "name": "ada",  # the admin's name, as display name and user name
        "preferred_username": "ada",
        "nickname": "ada@example.com",
    },
)
ROLES = """
[roles]
admin = ["ada@example.com", "ada"]
approver = ["group:ml-leads"]
operator = ["omar@example.com"]

[gates.default]
primary_metric = "eval_f1"
require_compatible_signature = false
"""
LOGIN_SCREEN = "Log in to use Flightdeck."


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m oidc_provider_mock`` on a free loopback port, with the test's two users."""
    folder = tmp_path_factory.mktemp("oidc-provider")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "provider.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = ServerProcess("OIDC provider", url, process, log_path)
    try:
        wait_for(f"{url}/.well-known/openid-configuration", server)
        for sub, claims in (LEAD, IMPOSTOR):
            assert requests.put(f"{url}/users/{sub}", json=claims, timeout=10).status_code == 204
        yield server
    finally:
        server.stop()


def wait_for(url: str, server: ServerProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.process.poll() is None, server.log_path.read_text(errors="replace")
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer:\n{server.log_path.read_text(errors='replace')}")


@dataclass
class LoginDashboard:
    """The dashboard under test and what the test needs to set up requests for it."""

    server: ServerProcess
    env: dict[str, str]


@pytest.fixture(scope="module")
def login_dashboard(
    oidc_provider: ServerProcess,
    mlflow_server: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LoginDashboard]:
    folder = tmp_path_factory.mktemp("oidc-dashboard")
    port = free_port()
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "flightdeck-e2e"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{oidc_provider.url}/.well-known/openid-configuration"\n',
        encoding="utf-8",
    )
    config = folder / "flightdeck.toml"
    config.write_text(ROLES, encoding="utf-8")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FLIGHTDECK_CONFIG": str(config),
        "FLIGHTDECK_STORE_URL": f"sqlite:///{folder / 'flightdeck.db'}",
        "FLIGHTDECK_DEV_MODE": "1",  # must not matter: the login wins
    }
    server = start_dashboard(port, env, folder / "log", secrets_file=secrets_file)
    yield LoginDashboard(server, env)
    server.stop()


def open_request(dashboard: LoginDashboard, name: str) -> str:
    """A real pending request to move ``name``'s champion from v1 to v2, by an operator."""
    settings = load_settings(dashboard.env, secrets_path=Path("/nonexistent/secrets.toml"))
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment(f"{name}-runs")
    client.create_registered_model(name)
    for score in (0.80, 0.85):
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "eval_f1", score)
        client.set_terminated(run.info.run_id)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    store = open_store(settings.store_url)
    try:
        services = Wiring(
            store, TrackingGateway(settings), load_governance(settings.governance_path)
        )
        request = promotion.request_promotion(
            services,
            Identity("omar@example.com", True, "operator", source="oidc"),
            model=name,
            version=2,
            target="champion",
            reason="f1 0.80 → 0.85 on the same holdout",
            rollback_plan="point champion back at v1",
            idempotency_key=f"{name}-2",
        )
        return request.request_id
    finally:
        store.engine.dispose()


def approvers_of(dashboard: LoginDashboard, request_id: str) -> tuple[str, ...]:
    settings = load_settings(dashboard.env, secrets_path=Path("/nonexistent/secrets.toml"))
    store = open_store(settings.store_url)
    try:
        return promotion.get_request(store, request_id).approvers
    finally:
        store.engine.dispose()


def assert_login_screen(page: Page) -> None:
    """Only the login screen: no navigation, no sidebar, no page."""
    wait_until_ready(page)
    expect(page.get_by_text(LOGIN_SCREEN)).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.locator("[data-testid='stSidebar']")).to_have_count(0)
    expect(page.locator("[data-testid='stSidebarNav']")).to_have_count(0)
    for served in ("Tracking server", "Promotions", "Acting as", "Development mode"):
        expect(page.get_by_text(served)).to_have_count(0)


def log_in(page: Page, subject: str) -> None:
    """From the login screen, through the provider's form, back to the dashboard."""
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize"), timeout=30_000)
    page.locator("input[name=sub]").fill(subject)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/($|\?)"), timeout=30_000)
    wait_until_ready(page)


def test_group_approver_logs_in_approves_and_logs_out(
    page: Page, login_dashboard: LoginDashboard, unique_name: str
) -> None:
    url = login_dashboard.server.url
    name = f"login-approval-{unique_name[-8:]}"
    request_id = open_request(login_dashboard, name)

    page.goto(f"{url}/promotions?request={request_id}")
    assert_login_screen(page)
    log_in(page, LEAD[0])
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text("carol@example.com · approver")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Development mode")).to_have_count(0)

    page.goto(f"{url}/promotions?request={request_id}")
    wait_until_ready(page)
    # Escaped Markdown keeps an invisible word joiner before the @, so it is not a mail link.
    requester = re.compile("requested by omar\u2060?@example\\.com")
    expect(page.get_by_text(requester)).to_be_visible(timeout=30_000)
    page.get_by_label("Comment").fill("Approved after logging in")
    page.get_by_role("button", name="Approve and promote").click()
    wait_until_ready(page)
    expect(page.get_by_text("Approve: done")).to_be_visible(timeout=30_000)
    assert (
        MlflowClient(login_dashboard.env["MLFLOW_TRACKING_URI"])
        .get_model_version_by_alias(name, "champion")
        .version
        == "2"
    )
    assert approvers_of(login_dashboard, request_id) == ("carol@example.com",)

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/oauth2/end_session"), timeout=30_000)
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/($|\?)"), timeout=30_000)
    assert_login_screen(page)
    page.goto(f"{url}/promotions?request={request_id}")  # the session is gone for good
    assert_login_screen(page)


def test_display_name_or_unverified_email_of_an_admin_leaves_a_viewer(
    browser: Browser, login_dashboard: LoginDashboard
) -> None:
    page = browser.new_context().new_page()
    page.goto(login_dashboard.server.url)
    assert_login_screen(page)
    log_in(page, IMPOSTOR[0])
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text("impostor-9 · viewer")).to_be_visible(timeout=30_000)
    page.goto(f"{login_dashboard.server.url}/admin")
    wait_until_ready(page)
    expect(page.get_by_text("impostor-9 · role viewer · signed in")).to_be_visible(timeout=30_000)
    page.context.close()
