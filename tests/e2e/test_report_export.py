"""The HTML export opens in a real browser with the network cut off: charts drawn, no script run."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, Route, expect

from services.governance.config import DriftThresholds
from services.overview.report import report_html
from tests.report_fixtures import HOSTILE, OVERVIEW


def test_the_html_report_opens_offline_with_its_charts(page: Page, tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text(report_html(OVERVIEW, DriftThresholds()), encoding="utf-8")
    requests: list[str] = []

    def refuse(route: Route) -> None:  # no network: only the file itself may load
        requests.append(route.request.url)
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", refuse)
    page.goto(path.as_uri())

    expect(page.locator(".card svg").first).to_be_visible(timeout=30_000)
    assert page.locator(".card svg").count() == 4  # drawn inline: no script, no request
    expect(page.get_by_role("heading", name="wine-classifier")).to_be_visible()
    expect(page.get_by_role("heading", name=HOSTILE)).to_be_visible()  # shown as text
    assert page.evaluate("window.__xss") is None
    assert all(url.startswith("file://") for url in requests), requests
