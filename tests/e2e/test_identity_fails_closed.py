"""In the browser, against real dashboards: without a trusted identity nothing is served.

A dashboard on every interface without a login refuses to serve any page, even with
development mode enabled. Behind a login proxy, the identity header counts only with the proxy's
secret, and only once: forged, duplicated and secret-less requests see no page. A tiny relay
(:mod:`tests.e2e.header_relay`) plays the proxy, configured well or badly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from services.core.processes import ServerProcess, free_port, start_dashboard
from tests.e2e.conftest import wait_until_ready
from tests.e2e.header_relay import HeaderRelay

SECRET = "e2e-proxy-secret-0123456789"
IDENTITY_HEADER, SECRET_HEADER = "X-Forwarded-Email", "X-Flightdeck-Proxy-Secret"
UNREACHABLE_MLFLOW = "http://127.0.0.1:9"
"""Refusals happen before any MLflow call; a served page would say MLflow is unreachable."""
PAGES = ("", "overview", "admin", "promotions", "runs")


def dashboard_env(folder: Path, tracking_uri: str, **variables: str) -> dict[str, str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, **variables}
    env["FLIGHTDECK_STORE_URL"] = f"sqlite:///{folder / 'flightdeck.db'}"
    for name in ("FLIGHTDECK_DEV_MODE", "FLIGHTDECK_AUTH_HEADER", "FLIGHTDECK_AUTH_SECRET"):
        if name not in variables:
            env.pop(name, None)
    return env


def assert_no_page_is_served(page: Page, says: str) -> None:
    """Only the refusal: no navigation, no sidebar, no page of the app, no MLflow status."""
    wait_until_ready(page)
    main = page.locator("[data-testid='stMain']")
    expect(main.get_by_text(says)).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid='stSidebar']")).to_have_count(0)
    expect(page.locator("[data-testid='stSidebarNav']")).to_have_count(0)
    for served in ("Tracking server", "Overview", "Cannot reach MLflow", "Acting as", "Audit log"):
        expect(page.get_by_text(served)).to_have_count(0)


@pytest.mark.parametrize("dev_mode", ["1", "0"])
def test_dashboard_on_every_interface_without_a_login_serves_no_page(
    page: Page, tmp_path: Path, dev_mode: str
) -> None:
    env = dashboard_env(tmp_path, UNREACHABLE_MLFLOW, FLIGHTDECK_DEV_MODE=dev_mode)
    server = start_dashboard(free_port(), env, tmp_path / "log", address="0.0.0.0")
    try:
        says = (
            "Development mode is enabled, but the dashboard listens on 0.0.0.0"
            if dev_mode == "1"
            else "Flightdeck has no login configured"
        )
        for path in PAGES:
            page.goto(f"{server.url}/{path}")
            assert_no_page_is_served(page, says)
            expect(page.get_by_text("FLIGHTDECK_AUTH_SECRET").first).to_be_visible()
    finally:
        server.stop()


def test_development_mode_on_loopback_serves_the_app(page: Page, tmp_path: Path) -> None:
    """The counterpart of the refusals: the same dashboard on loopback serves its pages."""
    env = dashboard_env(tmp_path, UNREACHABLE_MLFLOW, FLIGHTDECK_DEV_MODE="1")
    server = start_dashboard(free_port(), env, tmp_path / "log")
    try:
        page.goto(server.url)
        wait_until_ready(page)
        expect(page.get_by_text("Cannot reach MLflow")).to_be_visible(timeout=30_000)
        expect(page.locator("[data-testid='stSidebarNav']")).to_be_visible()
        expect(page.get_by_text("Development mode: no authentication")).to_be_visible()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def proxied_dashboard(
    mlflow_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A dashboard configured for a login proxy; development mode is enabled too and must not
    matter. It listens on every interface: the secret, not the address, protects it."""
    folder = tmp_path_factory.mktemp("proxied")
    env = dashboard_env(
        folder,
        mlflow_server.url,
        FLIGHTDECK_DEV_MODE="1",
        FLIGHTDECK_AUTH_HEADER=IDENTITY_HEADER,
        FLIGHTDECK_AUTH_SECRET=SECRET,
    )
    server = start_dashboard(free_port(), env, folder / "log", address="0.0.0.0")
    yield server
    server.stop()


@pytest.fixture
def relay(proxied_dashboard: ServerProcess) -> Iterator[Callable[..., HeaderRelay]]:
    started: list[HeaderRelay] = []

    def start(headers: list[tuple[str, str]], mode: str = "replace") -> HeaderRelay:
        port = int(proxied_dashboard.url.rsplit(":", 1)[1])
        started.append(HeaderRelay(port, headers, mode).start())
        return started[-1]

    yield start
    for one in started:
        one.stop()


def open_as(browser: Browser, headers: dict[str, str]) -> Page:
    """A new browser whose every request, the websocket's included, carries ``headers``."""
    return browser.new_context(extra_http_headers=headers).new_page()


@pytest.mark.parametrize(
    ("forged", "says"),
    [
        ({IDENTITY_HEADER: "ada"}, "its secret header is missing"),
        ({IDENTITY_HEADER: "ada", SECRET_HEADER: "guessed-secret-0123456789"}, "secret is wrong"),
        ({IDENTITY_HEADER: "ada", SECRET_HEADER: SECRET[:-1]}, "secret is wrong"),
        ({}, "its secret header is missing"),
    ],
)
def test_a_forged_identity_header_without_the_proxy_secret_sees_no_page(
    browser: Browser, proxied_dashboard: ServerProcess, forged: dict[str, str], says: str
) -> None:
    page = open_as(browser, forged)
    for path in ("", "admin"):
        page.goto(f"{proxied_dashboard.url}/{path}")
        assert_no_page_is_served(page, says)
    page.context.close()


def test_a_proxy_that_replaces_client_headers_names_its_user_not_the_forged_one(
    browser: Browser, relay: Callable[..., HeaderRelay]
) -> None:
    proxy = relay([(IDENTITY_HEADER, "vic"), (SECRET_HEADER, SECRET)], mode="replace")
    page = open_as(browser, {IDENTITY_HEADER: "ada", SECRET_HEADER: "forged"})
    page.goto(f"{proxy.url}/admin")
    wait_until_ready(page)
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text("vic · viewer")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("identified by the proxy")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Development mode")).to_have_count(0)
    page.context.close()


@pytest.mark.parametrize(
    ("client_sends", "says"),
    [
        ({IDENTITY_HEADER: "ada"}, "more than once"),
        ({SECRET_HEADER: SECRET}, "its secret header is repeated"),
    ],
)
def test_a_header_that_arrives_twice_is_refused(
    browser: Browser,
    relay: Callable[..., HeaderRelay],
    client_sends: dict[str, str],
    says: str,
) -> None:
    """A proxy that appends instead of replacing lets a client's copy through as well."""
    proxy = relay([(IDENTITY_HEADER, "vic"), (SECRET_HEADER, SECRET)], mode="append")
    page = open_as(browser, client_sends)
    page.goto(proxy.url)
    assert_no_page_is_served(page, says)
    page.context.close()
