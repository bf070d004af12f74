"""Hostile text in a real browser: no page links to or loads from anywhere but the app and the
tracking server, hostile text reads as itself, and every CSV export is formula-safe.

The dashboard runs with a hostile person's name as its development user, on the session's
MLflow server and store, after :func:`tests.hostile.build_hostile_world` filled them.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, expect

from services.core.exports import FORMULA_PREFIXES
from services.core.processes import ServerProcess, free_port, start_dashboard
from services.core.settings import CREDENTIAL_VARIABLES, load_settings
from services.core.store import open_store
from services.retraining.engines import backend_for
from tests.e2e.conftest import wait_until_ready
from tests.hostile import FORMULA, FORMULA_MODEL, HostileWorld, build_hostile_world, hostile

URL = hostile("fdxurl")
WORD_JOINER = "\u2060"
REFERENCES = """() => Array.from(document.body.querySelectorAll(
    'a, img, image, iframe, embed, object, source, video, audio, use')).map(element =>
    element.getAttribute('href') || element.getAttribute('xlink:href') ||
    element.getAttribute('src') || element.getAttribute('data') || '')
    .filter(value => value !== '')
    .map(value => new URL(value, document.baseURI).href)"""
"""Every link and image target in the DOM, absolute; SVG links (plotly) included."""


@pytest.fixture(scope="module")
def hostile_app(
    mlflow_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, HostileWorld]]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
    settings = load_settings(env)
    store = open_store(settings.store_url)  # the dashboard inherits the session's data folder
    world = build_hostile_world(mlflow_server.url, store, backend_for(settings))
    store.engine.dispose()
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    env["FLIGHTDECK_DEV_USER"] = world.viewer  # the person looking has a hostile name too
    folder = tmp_path_factory.mktemp("hostile-dashboard")
    server = start_dashboard(free_port(), env, folder / "log")
    yield server, world
    server.stop()


def pages(world: HostileWorld) -> dict[str, dict[str, str | list[str]]]:
    """Paths and queries of every page that shows the hostile world, or hostile URLs."""
    return {
        "overview": {},
        "experiments": {"q": URL},
        "runs": {"experiment_ids": world.experiment_id},
        "runs?filter": {"experiment_ids": world.experiment_id, "filter": URL},
        "run": {"run_id": world.run_id},
        "compare": {"run_ids": [world.run_id, world.other_run_id, world.formula_run_id]},
        "models": {"q": URL},
        "model": {"name": world.model, "version": "2", "compare": "1", "chart": "1"},
        "model?unknown": {"name": URL},
        "promotions?rejected": {"request": world.rejected_request_id},
        "promotions?cancelled": {"request": world.cancelled_request_id},
        "promotions?pending": {"request": world.open_request_id},
        "promotions?unknown": {"request": URL, "model": URL},
        "admin": {"model": URL, "action": URL},
        "monitoring": {"model": world.model},
        "retraining": {"job": world.job_id, "model": world.model},
    }


def open_page(page: Page, app: ServerProcess, name: str, query: dict[str, str | list[str]]) -> None:
    path = name.split("?")[0].replace("overview", "")  # the landing page has no path
    page.goto(f"{app.url}/{path}?{urlencode(query, doseq=True)}")
    wait_until_ready(page)
    page.wait_for_timeout(1500)  # charts and lazy parts settle


def foreign(references: list[str], *allowed: str) -> list[str]:
    """References to anywhere but the allowed origins (data: and blob: stay in the page)."""
    origins = {f"{urlsplit(a).scheme}://{urlsplit(a).netloc}" for a in allowed}
    return [
        r
        for r in references
        if urlsplit(r).scheme not in {"data", "blob"}
        and f"{urlsplit(r).scheme}://{urlsplit(r).netloc}" not in origins
    ]


def test_no_page_links_or_loads_anything_from_untrusted_text(
    page: Page, hostile_app: tuple[ServerProcess, HostileWorld], mlflow_server: ServerProcess
) -> None:
    app, world = hostile_app
    page.set_viewport_size({"width": 1400, "height": 1800})
    found: dict[str, list[str]] = {}
    shown = 0
    for name, query in pages(world).items():
        open_page(page, app, name, query)
        references = page.evaluate(REFERENCES)
        if bad := foreign(references, app.url, mlflow_server.url):
            found[name] = bad
        shown += page.locator("[data-testid=stMarkdownContainer]").filter(has_text="fdx").count()
    assert not found, found
    assert shown > 20  # the hostile text was on the pages, as text


def test_hostile_names_read_exactly_as_they_were_written(
    page: Page, hostile_app: tuple[ServerProcess, HostileWorld]
) -> None:
    """No link, image, icon, colour or emphasis: the title is the run's name, character for
    character (the invisible word joiners aside)."""
    app, world = hostile_app
    open_page(page, app, "run", {"run_id": world.run_id})
    title = page.locator("h1").first.inner_text()
    assert title.replace(WORD_JOINER, "") == hostile("fdxrun")
    sidebar = page.locator("[data-testid=stSidebar]").inner_text().replace(WORD_JOINER, "")
    assert world.viewer.casefold() in sidebar

    open_page(page, app, "model", {"name": world.model})
    assert page.locator("h1").first.inner_text().replace(WORD_JOINER, "") == world.model


def download_csv(page: Page, button: str) -> list[list[str]]:
    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name=button).click()
    wait_until_ready(page)
    text = Path(download.value.path()).read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))


def formula_cells(rows: list[list[str]]) -> list[str]:
    """Cells a spreadsheet would run: starting like a formula and not a number."""

    def number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    return [c for row in rows for c in row if c.startswith(FORMULA_PREFIXES) and not number(c)]


def test_every_csv_export_neutralises_a_formula_named_model_and_run(
    page: Page, hostile_app: tuple[ServerProcess, HostileWorld]
) -> None:
    app, world = hostile_app
    page.set_viewport_size({"width": 1400, "height": 1800})
    open_page(page, app, "overview", {})
    fleet = download_csv(page, "Models (CSV)")
    changes = download_csv(page, "Changes (CSV)")
    open_page(page, app, "runs", {"experiment_ids": world.experiment_id})
    runs = download_csv(page, "Export CSV")

    for rows in (fleet, changes, runs):
        assert not formula_cells(rows), formula_cells(rows)
    assert ["'" + world.formula_model] in [row[:1] for row in fleet]
    assert any(row[-1].startswith(f"'{FORMULA_MODEL}") for row in changes), changes
    assert any(f"'{FORMULA}" in row for row in runs), runs
    expect(page.locator("[data-testid=stApp]")).to_be_visible()
