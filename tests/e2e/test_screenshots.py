"""Screenshots of the real app on demo data, for the README.

Always taken (so the pages are seen to render); written to ``docs/`` only by
``make screenshots`` (``FLIGHTDECK_UPDATE_SCREENSHOTS=1``), otherwise to ``test-results/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient
from playwright.sync_api import Page, expect

from jobs.seed_demo import PROJECTS
from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import load_settings
from tests.e2e.conftest import ARTIFACTS_DIR, wait_until_ready
from tests.integration.test_monitoring_page import WINE, ensure_batches

DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"


def output_dir() -> Path:
    target = DOCS_DIR if os.environ.get("FLIGHTDECK_UPDATE_SCREENSHOTS") == "1" else ARTIFACTS_DIR
    target.mkdir(exist_ok=True)
    return target


def full_page_shot(page: Page, path: Path) -> None:
    """Streamlit scrolls inside stMain: grow the viewport to its content, then shoot."""
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": 1400, "height": max(700, int(height))})
    page.wait_for_timeout(1000)
    page.screenshot(path=str(path))


def monitored_demo_model(url: str) -> None:
    """Monitoring batches for the wine model, unless the demo seed logged them already."""
    settings = load_settings({"MLFLOW_TRACKING_URI": url}, secrets_path=Path("/nonexistent"))
    ensure_batches(TrackingGateway(settings), WINE, (0, 2, 6, 8))


def view_paths(url: str) -> dict[str, str]:
    """The address of each view, on the wine demo experiment."""
    client = MlflowClient(url)
    wine = client.get_experiment_by_name(PROJECTS[0].experiment).experiment_id
    sweep = client.search_runs([wine], "params.max_depth = '3' and params.subsample = '1.0'")
    compared = "&".join(f"run_ids={r.info.run_id}" for r in sweep)
    return {
        "overview": "/",
        "presentation": "/?present=1",
        "experiments": "/experiments",
        "runs": f"/runs?experiment_ids={wine}&columns=metrics.eval_f1&columns=metrics.eval_log_loss"
        "&columns=params.learning_rate&columns=params.max_depth&group_by=params.model_family",
        "compare": f"/compare?{compared}&metrics=val_log_loss&metrics=train_loss"
        "&across_runs=1&version_trend=1",
        "run": f"/run?run_id={sweep[0].info.run_id}",
        "monitoring": f"/monitoring?model={PROJECTS[0].model}",
    }


@pytest.mark.parametrize(
    "view", ["overview", "presentation", "experiments", "runs", "compare", "run", "monitoring"]
)
def test_screenshots_of_the_main_views(
    page: Page, dashboard: ServerProcess, seeded_server: ServerProcess, view: str
) -> None:
    if view in ("monitoring", "overview", "presentation"):
        monitored_demo_model(seeded_server.url)
    page.set_viewport_size({"width": 1400, "height": 800})
    page.goto(dashboard.url + view_paths(seeded_server.url)[view])
    wait_until_ready(page)
    if view in ("overview", "presentation"):
        expect(page.get_by_text(PROJECTS[0].model).first).to_be_visible(timeout=30_000)
        nav = page.locator("[data-testid=stSidebarNav]")
        expect(nav).to_have_count(1 if view == "overview" else 0)  # presenting: no navigation
    else:
        expect(page.locator("[role=gridcell]").first).to_be_attached(timeout=30_000)
    if view == "compare":
        expect(page.locator(".js-plotly-plot .main-svg").first).to_be_attached(timeout=30_000)
    if view in ("monitoring", "overview", "presentation"):
        expect(page.locator("[data-testid=stVegaLiteChart] svg").first).to_be_attached(
            timeout=30_000
        )
    path = output_dir() / f"{view}.png"
    full_page_shot(page, path)
    assert path.stat().st_size > 20_000  # a real rendering, not a blank page
