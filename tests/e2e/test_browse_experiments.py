"""A person in a real browser: open the app on seeded data and click through to a runs table."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from jobs.seed_demo import PROJECTS
from services.core.processes import ServerProcess
from tests.e2e.conftest import wait_until_ready


def grid_cell(page: Page, text: str):  # type: ignore[no-untyped-def]
    return page.locator("[role=gridcell]").filter(has_text=re.compile(f"^{re.escape(text)}$"))


def test_demo_experiments_are_listed_and_one_opens_its_runs(
    page: Page, dashboard: ServerProcess
) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{dashboard.url}/experiments")
    wait_until_ready(page)
    for project in PROJECTS:
        expect(grid_cell(page, project.experiment).first).to_be_attached(timeout=30_000)

    target = PROJECTS[0].experiment
    row = page.locator("[role=row]").filter(has=grid_cell(page, target)).first
    row_index = int(row.get_attribute("aria-rowindex") or "0")  # the header row is 1
    # The grid is a canvas: click the selection checkbox at the start of the row.
    canvas = page.locator("[data-testid='stDataFrameResizable']").first.bounding_box()
    assert canvas is not None
    row_height = 35
    page.mouse.click(canvas["x"] + 16, canvas["y"] + row_height * (row_index - 1) + row_height / 2)

    expect(page).to_have_url(re.compile(r"/runs\?experiment_ids=\d+"), timeout=30_000)
    wait_until_ready(page)
    expect(page.get_by_text(target).first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("29 runs")).to_be_visible(timeout=30_000)
    run_names = page.locator("[role=gridcell]").filter(has_text=re.compile(r"^(gbm|rf|linear)-"))
    expect(run_names.first).to_be_attached(timeout=30_000)


def test_unknown_experiment_link_says_not_found_and_leads_back(
    page: Page, dashboard: ServerProcess
) -> None:
    page.goto(f"{dashboard.url}/runs?experiment_id=99999")
    wait_until_ready(page)
    expect(page.get_by_text("Experiment 99999 was not found")).to_be_visible()
    page.get_by_role("link", name="All experiments").click()
    expect(page).not_to_have_url(re.compile(r"/runs"), timeout=30_000)  # the default page is /
    wait_until_ready(page)
    expect(grid_cell(page, PROJECTS[0].experiment).first).to_be_attached(timeout=30_000)
