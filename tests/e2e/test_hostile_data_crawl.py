"""Crawl every page, and every link reachable from it, over the nastiest data MLflow accepts.

A real MLflow server of its own holds :mod:`tests.hostile_data`'s families in every field;
Chromium opens each page of the navigation for each family's entities, then follows every
same-origin link the pages show. The crawl fails on:

- an uncaught exception (Streamlit's exception box);
- an error box: with data MLflow accepted, a page shows the data, it never blames it;
- a script that ran (a payload sets ``window.__flightdeckScriptRan``, or opens a dialog);
- a request to any origin but the dashboard's own (the favicon included);
- an error in the browser console.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, Request, Response

from services.core.links import (
    ADMIN_URL_PATH,
    COMPARE_URL_PATH,
    EXPERIMENTS_URL_PATH,
    MODEL_URL_PATH,
    MODELS_URL_PATH,
    MONITORING_URL_PATH,
    PROMOTIONS_URL_PATH,
    RETRAINING_URL_PATH,
    RUN_URL_PATH,
    RUNS_URL_PATH,
)
from services.core.processes import ServerProcess, free_port, start_dashboard, start_mlflow_server
from services.core.settings import CREDENTIAL_VARIABLES, load_settings
from services.core.store import open_store
from services.retraining.engines import backend_for
from tests.e2e.conftest import wait_until_ready
from tests.hostile_data import FAMILIES, SCRIPT_RAN, HostileEntities, seed_hostile_data

MAX_PAGES = 400
"""A bound on the crawl, far above what the seed links to, so a link loop cannot hang CI."""
STREAMLIT_PROBE = re.compile(r"^https?://[^/]+/[^/?]+/_stcore/(?:health|host-config)$")
"""Opened at ``/<page>``, Streamlit's own client first asks ``/<page>/_stcore/…`` whether the
app is served under that path, gets a 404 and goes on at ``/_stcore/…``. Same origin, and not
the app's doing: the only failed requests (and their console lines) the crawl forgives."""
LINKS = """() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"""


@dataclass
class Hostile:
    """The dashboard under test and what was seeded into its MLflow server."""

    app: ServerProcess
    entities: list[HostileEntities]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    folder = tmp_path_factory.mktemp("hostile-data")
    mlflow = start_mlflow_server(folder / "mlflow", free_port())
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow.url,
        "FLIGHTDECK_DATA_DIR": str(folder / "flightdeck"),
        "FLIGHTDECK_CONFIG": str(folder / "flightdeck.toml"),
        "FLIGHTDECK_DEV_USER": "ada",  # an admin: every page and every button is there
    }
    for name in CREDENTIAL_VARIABLES:
        env.pop(name, None)
    settings = load_settings(env)
    store = open_store(settings.store_url)
    try:
        entities = seed_hostile_data(
            settings, store, backend_for(settings), Path(env["FLIGHTDECK_CONFIG"])
        )
    finally:
        store.engine.dispose()
    app = start_dashboard(free_port(), env, folder / "dashboard.log")
    yield Hostile(app, entities)
    app.stop()
    mlflow.stop()


def start_urls(entities: list[HostileEntities]) -> list[str]:
    """Every page of the navigation, then each page that shows one family's entities."""
    urls = [
        "",
        EXPERIMENTS_URL_PATH,
        RUNS_URL_PATH,
        COMPARE_URL_PATH,
        MODELS_URL_PATH,
        PROMOTIONS_URL_PATH,
        MONITORING_URL_PATH,
        RETRAINING_URL_PATH,
        ADMIN_URL_PATH,
        "?present=1",
    ]
    runs = [e.run_id for e in entities]
    urls.append(f"{COMPARE_URL_PATH}?{urlencode({'run_ids': runs}, doseq=True)}")
    for e in entities:
        by_model = {"model": e.model}
        urls += [
            f"{RUNS_URL_PATH}?{urlencode({'experiment_ids': e.experiment_id})}",
            f"{RUN_URL_PATH}?{urlencode({'run_id': e.run_id})}",
            f"{MODEL_URL_PATH}?{urlencode({'name': e.model})}",
            f"{MODEL_URL_PATH}?{urlencode({'name': e.model, 'version': '2', 'compare': '1'})}",
            f"{PROMOTIONS_URL_PATH}?{urlencode({'request': e.request_id})}",
            f"{PROMOTIONS_URL_PATH}?{urlencode(by_model)}",
            f"{MONITORING_URL_PATH}?{urlencode(by_model)}",
            f"{RETRAINING_URL_PATH}?{urlencode({**by_model, 'job': e.job_id})}",
            f"?{urlencode({'scope': e.model})}",
        ]
    return urls


def plain(text: str) -> str:
    """Text as compared: whitespace runs are one space (HTML collapses them), and the invisible
    word joiners that escaping adds are gone."""
    return " ".join(text.replace("\u2060", "").split())


@dataclass
class Findings:
    """What went wrong, by URL."""

    by_url: dict[str, list[str]] = field(default_factory=dict)

    def add(self, url: str, problem: str) -> None:
        self.by_url.setdefault(url, []).append(problem)


@pytest.mark.timeout(900)  # a crawl of every page and link; 300 s ran out on a busy 2-core CI
def test_every_page_and_link_shows_hostile_data_without_breaking(
    page: Page, hostile: Hostile
) -> None:
    origin = hostile.app.url
    findings = Findings()
    current = {"url": ""}

    def on_request(request: Request) -> None:
        parts = urlsplit(request.url)
        if parts.scheme not in {"data", "blob"} and f"{parts.scheme}://{parts.netloc}" != origin:
            findings.add(current["url"], f"request to another origin: {request.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not STREAMLIT_PROBE.search(message.location.get("url", "")):
            findings.add(current["url"], f"console error: {message.text}")

    def on_dialog(dialog: Dialog) -> None:
        findings.add(current["url"], f"a script opened a dialog: {dialog.message}")
        dialog.dismiss()

    def on_response(response: Response) -> None:
        if response.status >= 400 and not STREAMLIT_PROBE.search(response.url):
            findings.add(current["url"], f"{response.status} for {response.url}")

    page.context.on("request", on_request)
    page.context.on("response", on_response)
    page.on("console", on_console)
    page.on("pageerror", lambda error: findings.add(current["url"], f"page error: {error}"))
    page.on("dialog", on_dialog)
    page.set_viewport_size({"width": 1400, "height": 1600})

    queue = [urljoin(origin + "/", path) for path in start_urls(hostile.entities)]
    titles = {  # a model's page is titled with its name, exactly
        urljoin(origin + "/", f"{MODEL_URL_PATH}?{urlencode({'name': e.model})}"): e.model
        for e in hostile.entities
    }
    seen = set(queue)
    visited = 0
    while queue and visited < MAX_PAGES:
        url = queue.pop(0)
        current["url"] = url
        page.goto(url)
        wait_until_ready(page)
        page.wait_for_timeout(300)  # charts and fragments settle
        wait_until_ready(page)
        visited += 1
        for box in ("stException", "stAlertContentError"):
            for text in page.get_by_test_id(box).all_inner_texts():
                findings.add(url, f"{box}: {text[:300]}")
        if page.evaluate(f"() => window.{SCRIPT_RAN} !== undefined"):
            findings.add(url, "a payload's script ran")
        if (title := titles.get(url)) is not None:
            shown = page.locator("h1").first.inner_text()
            if plain(shown) != plain(title):
                findings.add(url, f"the title reads {shown!r}, not {title!r}")
        for link in page.evaluate(LINKS):
            target = link.split("#", 1)[0]
            if target.startswith(origin) and target not in seen:
                seen.add(target)
                queue.append(target)

    assert not findings.by_url, "\n".join(
        f"{url}\n  " + "\n  ".join(problems) for url, problems in findings.by_url.items()
    )
    assert visited > len(FAMILIES) * 9, visited  # the crawl reached every family's pages
    assert not queue, f"{len(queue)} links left after {MAX_PAGES} pages"
