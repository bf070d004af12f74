"""Browser fixtures: Playwright drives Debian's chromium against ``streamlit run app.py``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from services.core.processes import ServerProcess, free_port, start_dashboard
from services.core.settings import CREDENTIAL_VARIABLES
from tests.conftest import config_file_with_copy_gates

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-results"
RETRAIN_MODEL = "glucose-forecaster-e2e"
"""The model the retraining browser test creates: the dashboard's config knows its gates."""
READY = "[data-testid='stApp'][data-test-script-state='notRunning']"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Launch Debian's chromium: Playwright's own browser download cannot run here."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Debian's chromium is missing: `make test` installs it (apt-get install "
            "chromium); browser tests never skip."
        )
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture(scope="session")
def dashboard(
    seeded_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """The real dashboard, served by Streamlit on a free loopback port, on the seeded server."""
    folder = tmp_path_factory.mktemp("dashboard")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": seeded_server.url,
        "FLIGHTDECK_CONFIG": str(config_file_with_copy_gates(folder, RETRAIN_MODEL)),
    }
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    server = start_dashboard(free_port(), env, folder / "log")
    yield server
    server.stop()


def wait_until_ready(page: Page) -> None:
    """Wait for the script to finish, the socket to connect, and skeletons to go."""
    page.wait_for_selector(READY, timeout=60_000)
    page.wait_for_selector("[data-test-connection-state='CONNECTED']", timeout=30_000)
    expect(page.locator("[data-testid='stSkeleton']")).to_have_count(0, timeout=30_000)
    page.wait_for_selector(READY, timeout=60_000)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Save a full-page screenshot when a browser test fails."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    page = item.funcargs.get("page") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and page is not None:
        ARTIFACTS_DIR.mkdir(exist_ok=True)
        path = ARTIFACTS_DIR / f"{item.name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot saved to {path}")
