"""Issue 3's browser measurements: what a person waits for, in Flightdeck and in MLflow's own UI.

Every visit opens a new browser context (fresh cookies, cache and storage) and is timed from
``page.goto`` until the measured content is on the page (:func:`bench.browser.timed_visit`).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from playwright.sync_api import Browser, Page

from bench.browser import Condition, open_page, timed_visit, wait_for_streamlit
from bench.memory import tree_rss_mb
from bench.timing import REPETITIONS, Timing
from services.core.processes import ServerProcess

RUN_NAME = re.compile(r"-s\d{3}-t\d{2}$")
"""Run names of the 10,000-run experiment, e.g. ``xgboost-s199-t45``."""
MLFLOW_UI_ROWS = 20
MLFLOW_RUN_LINKS_JS = """
(n) => [...document.querySelectorAll("a[href*='/runs/']")]
    .filter(a => /\\/runs\\/[0-9a-f]{32}$/.test(a.getAttribute('href'))).length >= n
"""
TABLE_ROW_PX = 35
"""Height of a data-grid row (and of its header) in CSS pixels: Streamlit's default."""
TABLE_ROWS_PAINTED_JS = """
(rowPx) => {
    const canvas = document.querySelector("[data-testid='stDataFrame'] canvas");
    if (!canvas || !canvas.width || !canvas.height) return false;
    const row = Math.round(rowPx * window.devicePixelRatio);
    const rows = Math.floor(canvas.height / row) - 1;  // below the header
    if (rows < 5) return false;
    const context = canvas.getContext('2d');
    for (let r = 1; r <= rows; r++) {
        const band = context.getImageData(0, r * row, canvas.width, row).data;
        let ink = 0;
        for (let i = 0; i < band.length; i += 4) if (band[i] < 128 && band[i + 3] > 0) ink++;
        if (ink < 200) return false;  // this row has no text drawn yet
    }
    return true;
}
"""
FLIGHTDECK_CHARTS_JS = """
([metrics, n]) => metrics.every(m => [...document.querySelectorAll(
        "[data-testid='stVegaLiteChart']")].some(
    c => c.querySelector('.role-title-text text')?.textContent === m
        && [...c.querySelectorAll('.lines_marks path')]
            .filter(p => (p.getAttribute('d') || '').length > 0).length === n))
"""
MLFLOW_CHARTS_JS = """
([metrics, n]) => metrics.every(m => [...document.querySelectorAll(
        "[data-testid='experiment-view-compare-runs-card']")].some(card => {
    const lines = [...card.querySelectorAll('.scatterlayer path.js-line')]
        .filter(path => (path.getAttribute('d') || '').length > 0);
    const legend = card.innerText.split('\\n').filter(t => t.endsWith(` (${m})`));
    return card.innerText.startsWith(m) && legend.length === n && lines.length >= n;
}))
"""
MLFLOW_UI_STATE_KEY = (
    'MLflowLocalStorage-1.1-ExperimentPage-["{experiment_id}"]-ReactComponentState'
)
"""Where MLflow's UI keeps an experiment page's view state (charts, hidden runs) in the browser."""
LOAD_ALL_TIMEOUT_MS = 300_000


@dataclass(frozen=True)
class VisitTimings:
    """A cold first visit (untimed warm-up for the others) and the timed warm visits."""

    cold: Timing
    warm: Timing

    @property
    def pair(self) -> tuple[Timing, Timing]:
        return self.cold, self.warm


@dataclass(frozen=True)
class MemoryReading:
    """The dashboard's resident memory (its process tree) around "Load all runs"."""

    before_mb: float
    after_mb: float
    load_seconds: float
    """From the click until the table shows every run."""


def time_visits(
    browser: Browser, label: str, url: str, condition: Condition, *, init_script: str = ""
) -> VisitTimings:
    """One cold visit, then :data:`REPETITIONS` timed visits, each in a fresh context."""

    def visit() -> float:
        return timed_visit(browser, url, condition, init_script=init_script)

    cold = Timing(f"{label}, first visit after start", (visit(),))
    warm = Timing(label, tuple(visit() for _ in range(REPETITIONS)))
    for timing in (cold, warm):
        print(
            f"  {timing.label}: median {timing.median:.3f} s "
            f"(min {timing.minimum:.3f}, max {timing.maximum:.3f})",
            flush=True,
        )
    return VisitTimings(cold, warm)


def flightdeck_runs_url(dashboard: ServerProcess, experiment_id: str) -> str:
    return f"{dashboard.url}/runs?experiment_ids={experiment_id}"


def mlflow_runs_url(server_url: str, experiment_id: str) -> str:
    return f"{server_url}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def flightdeck_compare_url(
    dashboard: ServerProcess, run_ids: tuple[str, ...], metrics: tuple[str, ...]
) -> str:
    query = [("run_ids", r) for r in run_ids] + [("metrics", m) for m in metrics]
    return f"{dashboard.url}/compare?{urlencode(query)}"


def mlflow_chart_url(server_url: str, experiment_id: str, run_ids: tuple[str, ...]) -> str:
    """MLflow's chart view of one experiment, its runs filtered down to ``run_ids``."""
    run_filter = "attributes.run_id IN (" + ", ".join(f"'{r}'" for r in run_ids) + ")"
    query = {
        "workflowType": "machine_learning",
        "compareRunsMode": "CHART",
        "searchFilter": run_filter,
    }
    return f"{server_url}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def mlflow_show_first_20_script(experiment_id: str) -> str:
    """Browser start-up script: MLflow's "Show first 20" runs choice, before the page loads.

    MLflow's chart view draws only the visible runs, the first 10 by default; the choice lives
    in the browser's local storage, not in the URL. This is what picking "Show first 20" in
    the runs table's eye menu stores.
    """
    key = MLFLOW_UI_STATE_KEY.format(experiment_id=experiment_id)
    state = json.dumps({"runsHiddenMode": "FIRST_20_RUNS"})
    return f"window.localStorage.setItem({json.dumps(key)}, {json.dumps(state)});"


def runs_table_painted(page: Page) -> None:
    """Flightdeck's runs table has drawn text in every row in view.

    The table is a canvas (Streamlit's data grid): what a person sees is its pixels. The grid
    writes an accessible copy of its cells into the page about 0.3 s after drawing them, which
    :func:`runs_table_shown` waits for.
    """
    page.wait_for_function(TABLE_ROWS_PAINTED_JS, arg=TABLE_ROW_PX, polling="raf")


def runs_table_shown(page: Page) -> None:
    """Flightdeck's runs table has cells holding run names (the grid's accessible copy)."""
    page.locator("[role=gridcell]").filter(has_text=RUN_NAME).first.wait_for(state="attached")


def mlflow_runs_shown(page: Page) -> None:
    """MLflow's runs table links at least 20 runs."""
    page.wait_for_function(MLFLOW_RUN_LINKS_JS, arg=MLFLOW_UI_ROWS)


def flightdeck_charts_drawn(metrics: tuple[str, ...], runs: int) -> Condition:
    """Each metric's history chart is drawn with one legend entry per run."""

    def drawn(page: Page) -> None:
        page.wait_for_function(FLIGHTDECK_CHARTS_JS, arg=[list(metrics), runs])

    return drawn


def mlflow_charts_drawn(metrics: tuple[str, ...], runs: int) -> Condition:
    """Each metric's chart card has a legend entry and a drawn line per run."""

    def drawn(page: Page) -> None:
        page.wait_for_function(MLFLOW_CHARTS_JS, arg=[list(metrics), runs])

    return drawn


def load_all_memory(
    browser: Browser, dashboard: ServerProcess, experiment_id: str, runs: int
) -> MemoryReading:
    """Open the runs page, click "Load all runs", wait for every run; RSS before and after."""
    with open_page(browser, flightdeck_runs_url(dashboard, experiment_id)) as page:
        runs_table_shown(page)
        wait_for_streamlit(page)
        before = tree_rss_mb(dashboard.process.pid)
        started = time.perf_counter()
        page.get_by_role("button", name=re.compile(r"^Load all runs")).click()
        page.get_by_text(re.compile(rf"^{runs:,} runs")).wait_for(timeout=LOAD_ALL_TIMEOUT_MS)
        seconds = time.perf_counter() - started
        wait_for_streamlit(page)
        after = tree_rss_mb(dashboard.process.pid)
    print(f"  Dashboard RSS: {before:.0f} MB before Load all, {after:.0f} MB after", flush=True)
    return MemoryReading(before, after, seconds)
