"""In the browser: the Monitoring page draws drift, and an XSS payload in the data stays text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from playwright.sync_api import Browser, Dialog, Page, expect

from services.core.gateway import TrackingGateway
from services.core.processes import ServerProcess
from services.monitoring import runs as monitoring
from services.monitoring.drift import compute_drift
from tests.e2e.conftest import wait_until_ready
from tests.integration.test_monitoring_page import WINE, ensure_batches

VIEWPORT = {"width": 1400, "height": 1000}
PAYLOAD = "</script><img src=x onerror=window.__xss=1;alert(1)>"
"""A category value that runs script wherever Evidently's report is rendered as HTML."""
COLUMN_PAYLOAD = "<img src=y onerror=window.__xss=2>"
"""A column name that would run script if it reached HTML."""
CHARTS = "[data-testid=stVegaLiteChart]"
DRAWN = "[data-testid=stVegaLiteChart] svg .mark-rect, [data-testid=stVegaLiteChart] svg .mark-line"


@pytest.fixture
def gateway(seeded_server: ServerProcess, settings_for) -> TrackingGateway:  # type: ignore[no-untyped-def]
    return TrackingGateway(settings_for(seeded_server.url))


def hostile_batches(gateway: TrackingGateway, model: str) -> str:
    """Two monitoring batches of ``model`` whose data carries the payloads; the newest's run id."""
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(
        {
            "colour": rng.choice(["red", "white"], size=300),
            COLUMN_PAYLOAD: rng.choice(["a", "b"], size=300),
            "alcohol": rng.normal(12, 1, size=300),
        }
    )
    current = pd.DataFrame(
        {
            "colour": rng.choice(["red", PAYLOAD], size=300, p=[0.3, 0.7]),
            COLUMN_PAYLOAD: rng.choice(["a", PAYLOAD], size=300),
            "alcohol": rng.normal(14, 1, size=300),
        }
    )
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    run_id = ""
    for days, data in ((2, reference), (1, current)):
        run_id = monitoring.log_monitoring_run(
            gateway,
            model=model,
            version=1,
            alias="champion",
            window_start=end - timedelta(days=days),
            window_end=end - timedelta(days=days - 1),
            result=compute_drift(reference, data),
        )
    return run_id


def test_drift_over_time_and_a_distribution_are_drawn(
    page: Page, dashboard: ServerProcess, gateway: TrackingGateway
) -> None:
    ensure_batches(gateway, WINE, (0, 2, 6, 8))

    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{dashboard.url}/monitoring?model={WINE}")
    wait_until_ready(page)

    expect(page.get_by_text("Batch detail")).to_be_visible(timeout=30_000)
    # Drift over time, the heatmap and the chosen column's distribution.
    expect(page.locator(CHARTS)).to_have_count(3, timeout=30_000)
    expect(page.locator(DRAWN).first).to_be_attached(timeout=30_000)
    expect(page.locator(CHARTS).first).to_contain_text("Share of drifted columns")
    expect(page.locator(CHARTS).nth(2)).to_contain_text("reference vs current")


def test_an_xss_payload_in_the_data_never_runs_and_shows_as_text(
    page: Page,
    browser: Browser,
    dashboard: ServerProcess,
    seeded_server: ServerProcess,
    gateway: TrackingGateway,
    unique_name: str,
    tmp_path: Path,
) -> None:
    model = f"hostile-{unique_name[-8:]}"
    MlflowClient(seeded_server.url).create_registered_model(model)
    run_id = hostile_batches(gateway, model)
    assert b"</script><img src=x onerror=window.__xss=1" in monitoring.report_html(gateway, run_id)

    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.set_viewport_size(VIEWPORT)  # type: ignore[arg-type]
    page.goto(f"{dashboard.url}/monitoring?model={model}&feature=colour")
    wait_until_ready(page)
    expect(page.locator(CHARTS)).to_have_count(3, timeout=30_000)
    expect(page.locator(DRAWN).first).to_be_attached(timeout=30_000)

    # The category is drawn as text: an SVG label on the distribution's axis (Vega shortens a
    # long one) and whole in the bars' accessible descriptions; the column name in the table.
    distribution = page.locator(CHARTS).nth(2)
    expect(distribution.locator("text").filter(has_text="</script><img")).to_have_count(
        1, timeout=30_000
    )
    described = distribution.locator("[role=graphics-symbol]").evaluate_all(
        "bars => bars.map(bar => bar.getAttribute('aria-label'))"
    )
    assert any(PAYLOAD in label for label in described), described
    cell = page.locator("[role=gridcell]").filter(has_text="src=y onerror")
    expect(cell.first).to_be_attached(timeout=30_000)

    # The column with the hostile name, through a link.
    page.goto(f"{dashboard.url}/monitoring?model={model}&feature={quote(COLUMN_PAYLOAD)}")
    wait_until_ready(page)
    expect(page.get_by_role("combobox", name="Column")).to_have_value(
        COLUMN_PAYLOAD, timeout=30_000
    )
    expect(page.locator(CHARTS).nth(2)).to_contain_text(COLUMN_PAYLOAD)

    # The report only downloads: nothing of it is rendered in Flightdeck's origin.
    expect(page.get_by_text("opens outside Flightdeck")).to_be_visible()
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="Download the full Evidently report").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.startswith(f"{model}-") and saved.suffix == ".html"
    page.wait_for_timeout(2000)  # give any injected handler time to fire

    assert page.locator("iframe[srcdoc]").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []

    # The control: opened on its own, outside Flightdeck, the report does run the payload.
    elsewhere = browser.new_context().new_page()
    elsewhere.on("dialog", lambda dialog: dialog.dismiss())
    elsewhere.goto(saved.as_uri(), wait_until="domcontentloaded")
    elsewhere.wait_for_function("window.__xss !== undefined", timeout=30_000)
    elsewhere.context.close()
