"""A person in a real browser: filter, select 3 runs, compare, then share the link."""

from __future__ import annotations

import re

from mlflow import MlflowClient
from playwright.sync_api import Browser, Page, expect

from jobs.seed_demo import PROJECTS
from services.core.processes import ServerProcess
from tests.e2e.conftest import wait_until_ready

ROW_HEIGHT = 35


def click_row_checkbox(page: Page, row_index: int) -> None:
    """Tick the selection box of a data row (1-based) of the first grid: it is a canvas."""
    grid = page.locator("[data-testid='stDataFrameResizable']").first.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 16, grid["y"] + ROW_HEIGHT * row_index + ROW_HEIGHT / 2)
    wait_until_ready(page)


def test_filter_select_compare_and_reopen_the_copied_link(
    page: Page, browser: Browser, dashboard: ServerProcess, seeded_server: ServerProcess
) -> None:
    wine = MlflowClient(seeded_server.url).get_experiment_by_name(PROJECTS[0].experiment)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{dashboard.url}/runs?experiment_ids={wine.experiment_id}")
    wait_until_ready(page)

    page.get_by_role("textbox", name="Filter").fill("params.model_family = 'gradient_boosting'")
    page.get_by_role("textbox", name="Filter").press("Enter")
    wait_until_ready(page)
    expect(page.get_by_text("18 runs")).to_be_visible(timeout=30_000)

    for row in (1, 2, 3):
        click_row_checkbox(page, row)
    compare = page.get_by_role("button", name="Compare 3 runs")
    expect(compare).to_be_enabled(timeout=30_000)
    compare.click()

    expect(page).to_have_url(re.compile(r"/compare\?run_ids="), timeout=30_000)
    wait_until_ready(page)
    page.get_by_text("Show parallel coordinates, scatter and box plot").click()
    wait_until_ready(page)
    page.get_by_role("tab", name="Parallel coordinates").click()
    expect(page.locator(".js-plotly-plot .parcoords").first).to_be_attached(timeout=30_000)
    page.get_by_label("Metrics", exact=True).last.click()
    page.keyboard.type("train_loss")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    wait_until_ready(page)
    title = page.locator(".role-title-text text", has_text=re.compile("^train_loss$"))
    history = page.locator("[data-testid=stVegaLiteChart]").filter(has=title).first
    expect(history.locator(".lines_marks path")).to_have_count(3, timeout=30_000)  # a line per run
    expect(history.locator(".role-legend-label text")).to_have_count(3)  # each named

    page.keyboard.press("Escape")  # the metrics list may still be open, hiding the page
    page.get_by_role("button", name="Copy link").click()
    shared = (
        page.get_by_role("dialog").locator("[data-testid='stCode']").filter(has_text="compare?")
    )
    link = shared.inner_text().replace("\n", "")
    run_ids = re.findall(r"run_ids=([0-9a-f]{32})", link)
    assert len(run_ids) == 3

    fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    fresh.goto(link)
    wait_until_ready(fresh)
    for run_id in run_ids:
        cell = fresh.locator("[role=gridcell]").filter(has_text=run_id)
        expect(cell.first).to_be_attached(timeout=30_000)
    expect(fresh.locator(".js-plotly-plot .parcoords").first).to_be_attached(timeout=30_000)
    fresh.context.close()
