"""Screenshots of the real app on demo data, for the README.

Always taken (so the pages are seen to render); written to ``docs/`` only by
``make screenshots`` (``FLIGHTDECK_UPDATE_SCREENSHOTS=1``), otherwise to ``test-results/``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from jobs.seed_demo import PROJECTS
from services.processes import ServerProcess
from tests.e2e.conftest import ARTIFACTS_DIR, wait_until_ready

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def output_dir() -> Path:
    target = DOCS_DIR if os.environ.get("FLIGHTDECK_UPDATE_SCREENSHOTS") == "1" else ARTIFACTS_DIR
    target.mkdir(exist_ok=True)
    return target


def full_page_shot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside stMain: grow the viewport to its content, then shoot."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(700, int(height))})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))


@pytest.mark.parametrize("view", ["experiments", "runs"])
def test_screenshots_of_the_main_views(page: Page, dashboard: ServerProcess, view: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 800})
    page.goto(dashboard.url)
    wait_until_ready(page)
    cell = page.locator("[role=gridcell]").filter(
        has_text=re.compile(f"^{PROJECTS[0].experiment}$")
    )
    expect(cell.first).to_be_attached(timeout=30_000)
    if view == "runs":
        experiment_id = (
            page.locator("[role=row]")
            .filter(has=cell.first)
            .first.locator("[role=gridcell]")
            .nth(1)
            .inner_text()
        )
        page.goto(f"{dashboard.url}/runs?experiment_id={experiment_id}")
        wait_until_ready(page)
        expect(page.get_by_text("29 runs")).to_be_visible(timeout=30_000)
    path = output_dir() / f"{view}.png"
    full_page_shot(page, path)
    assert path.stat().st_size > 20_000  # a real rendering, not a blank page
