"""Issue 15: every page, cold, in a fresh browser, against MLflow's nearest page.

``python -m bench.pages`` (part of ``make bench``). Each repetition starts a **new dashboard
process with an empty data folder** (so no kept metric history and no cached read), lets it
serve one untimed visit of the Experiments page (Python's imports, which every later visit
shares), then opens the measured page in a fresh browser context: that is the **cold** row,
data this process never read. The same URL again in that process, in another fresh context, is
the **warm** row. MLflow's UI is timed in a fresh context in the same repetition, taking turns
with the dashboard, on the same server and store. Medians over the repetitions.

A screenshot of each page is taken at the moment its condition held (``bench/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from playwright.sync_api import Browser, Page

from bench.browser import chromium, timed_milestones, wait_for_streamlit
from bench.fleet_store import FLEET_DIR, SeededFleet, ensure_fleet, start_demo_server
from bench.history_store import SeededHistory, ensure_history
from bench.pages_store import SeededPages, ensure_pages
from bench.report import Target, ratio_target, seconds_target, targets_table, timing_text
from bench.store import ensure_store
from bench.timing import REPETITIONS, Timing
from bench.ui import (
    FLIGHTDECK_CHARTS_JS,
    MLFLOW_CHARTS_JS,
    TABLE_ROW_PX,
    TABLE_ROWS_PAINTED_JS,
    mlflow_chart_url,
    mlflow_show_first_20_script,
)
from services.core.gateway import TrackingGateway
from services.core.processes import (
    free_port,
    start_dashboard,
    start_mlflow_server,
)
from services.core.settings import CREDENTIAL_VARIABLES, PROJECT_ROOT, load_settings
from services.core.store import open_store
from services.experiments.history_store import HistoryStore, StoredSize, prefetch_ended_runs

RESULTS_PATH = PROJECT_ROOT / "bench" / "results.md"
KEPT_DIR = PROJECT_ROOT / "bench" / ".store" / "kept"
SCREENSHOTS = PROJECT_ROOT / "bench" / "screenshots"
SECTION_START = "<!-- bench.pages: start -->"
SECTION_END = "<!-- bench.pages: end -->"
NO_MLFLOW_PAGE_LIMIT_S = 1.5
ROWS_PAINTED_JS = TABLE_ROWS_PAINTED_JS.replace("band[i] < 128", "band[i] < 160").replace(
    "ink < 200", "ink < 40"
)
"""Every row in view of the first grid has text: as for the runs table, but a row may hold only
a short name and a number (the run page's metrics: about 60 dark pixels at 1600 px wide)."""

BENCH, DEMO, FLEET = "bench", "demo", "fleet"
Milestones = Callable[[Page], list[float]]
"""Waits for each of a page's conditions in turn; the seconds since the visit began at each."""


@dataclass(frozen=True)
class Case:
    """One page: how to open it in Flightdeck and in MLflow, and when it counts as shown."""

    label: str
    path: str
    ready: tuple[tuple[str, Callable[[Page], None]], ...]
    """(milestone, condition) pairs, in the order they are expected."""
    mlflow_url: str | None = None
    mlflow_ready: tuple[tuple[str, Callable[[Page], None]], ...] = ()
    mlflow_init: str = ""
    limits: dict[str, float] = field(default_factory=dict)
    """Milestone -> the most it may take: a ratio to MLflow's milestone of the same name (with no
    MLflow page: every milestone within :data:`NO_MLFLOW_PAGE_LIMIT_S`)."""
    kept: bool = False
    """The dashboard's store starts with the histories the control loop's prefetch kept."""
    server: str = BENCH
    """Which MLflow server it reads: the bench store, the demo data (``make run``'s) or the
    fleet grown from it (:mod:`bench.fleet_store`, whose dashboards start with its store)."""


def main() -> int:
    store = ensure_store()
    history = ensure_history(store)
    fleet = ensure_fleet()
    servers = {
        BENCH: start_mlflow_server(store.data_dir, free_port()),
        DEMO: start_demo_server(),
        FLEET: start_mlflow_server(FLEET_DIR, free_port()),
    }
    try:
        bench_url = servers[BENCH].url
        pages = ensure_pages(bench_url, store)
        cases = page_cases(bench_url, history, pages) + demo_cases(fleet)
        kept = kept_histories(bench_url, history)
        urls = {name: server.url for name, server in servers.items()}
        timings = measure(urls, cases, kept.path, fleet.store_path)
    finally:
        for server in servers.values():
            server.stop()
    targets = page_targets(cases, timings)
    write_section(targets, timings, kept)
    print(f"\n{targets_table(tuple(targets))}")
    return 0


DEMO_MODEL = "wine-classifier"


def demo_cases(fleet: SeededFleet) -> list[Case]:
    """Pages that have no MLflow counterpart, on the demo data and the fleet grown from it:
    each within 1.5 s."""
    cards = (("cards shown", text_shown("Pending approvals")),)
    chart = (("drift chart drawn", chart_shown()),)
    return [
        Case("Overview, demo data (3 models)", "/overview", cards, server=DEMO),
        Case(f"Overview, {fleet.models} models", "/overview", cards, server=FLEET),
        Case(
            "Monitoring, demo model (30 batches)",
            f"/monitoring?model={DEMO_MODEL}",
            chart,
            server=DEMO,
        ),
        Case(
            f"Monitoring, {fleet.long_days} batches",
            f"/monitoring?model={quote(fleet.long_model)}",
            chart,
            server=FLEET,
        ),
        Case(
            "Promotions page, request list (no open request)",
            "/promotions",
            (("requests listed", text_shown("Request a promotion")),),
            server=DEMO,
        ),
        Case(
            "Promotion decision page, one open request",
            f"/promotions?request={fleet.request_id}",
            (("decision shown", text_shown("Approve and promote")),),
            server=FLEET,
        ),
    ]


def kept_histories(url: str, history: SeededHistory) -> KeptHistories:
    """A store holding what the control loop's prefetch keeps of the history experiment's runs
    as they end (:func:`prefetch_ended_runs`, the same store and reader): copied into the data
    folder of the dashboards that start with kept histories."""
    folder = KEPT_DIR
    store_path = folder / "flightdeck.db"
    if not (folder / "complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        print("Keeping the history experiment's histories, as the control loop would…", flush=True)
        gateway = TrackingGateway(load_settings({"MLFLOW_TRACKING_URI": url}))
        started = time.monotonic()
        store = open_store(f"sqlite:///{store_path}")
        ended = gateway.search_runs([history.experiment_id], max_results=history.shape.runs).runs
        first_end = min(r.end_time for r in ended if r.end_time)
        prefetch_ended_runs(gateway, HistoryStore(store), first_end, (history.experiment_id,))
        (folder / "complete").write_text(f"{time.monotonic() - started:.1f}", encoding="utf-8")
    store = open_store(f"sqlite:///{store_path}")
    size = HistoryStore(store).size()
    seconds = float((folder / "complete").read_text(encoding="utf-8"))
    return KeptHistories(store_path, size, seconds)


@dataclass(frozen=True)
class KeptHistories:
    """The prefetched store, and what it cost."""

    path: Path
    size: StoredSize
    prefetch_seconds: float

    @property
    def bytes_per_1000_runs(self) -> float:
        return self.size.bytes / max(self.size.runs, 1) * 1000


def page_cases(url: str, history: SeededHistory, pages: SeededPages) -> list[Case]:
    gateway = TrackingGateway(load_settings({"MLFLOW_TRACKING_URI": url}))
    runs = sorted(
        gateway.search_runs([history.experiment_id], max_results=history.shape.runs).runs,
        key=lambda r: r.name or "",
    )
    twenty = tuple(r.run_id for r in runs[::5])
    hundred = tuple(r.run_id for r in runs)
    metrics = history.shape.metric_keys
    small, large = sorted(pages.models, key=pages.models.__getitem__)
    return [
        *(
            Case(
                f"Compare 20 runs × 2 metrics × 10k steps, {kind}",
                compare_path(twenty, metrics),
                (
                    ("first chart", flightdeck_charts(metrics, len(twenty), every=False)),
                    ("both charts", flightdeck_charts(metrics, len(twenty), every=True)),
                ),
                mlflow_chart_url(url, history.experiment_id, twenty),
                (
                    ("first chart", mlflow_charts(metrics, len(twenty), every=False)),
                    ("both charts", mlflow_charts(metrics, len(twenty), every=True)),
                ),
                mlflow_show_first_20_script(history.experiment_id),
                {"first chart": 0.5, "both charts": 0.7, "warm": 0.3},
                kept=kept,
            )
            for kind, kept in (("kept by the loop", True), ("nothing kept", False))
        ),
        *(
            Case(
                f"Compare 100 runs × 2 metrics (MLflow: its 20-run chart view), {kind}",
                compare_path(hundred, metrics),
                (("both charts", flightdeck_charts(metrics, len(hundred), every=True)),),
                mlflow_chart_url(url, history.experiment_id, twenty),
                (("both charts", mlflow_charts(metrics, len(twenty), every=True)),),
                mlflow_show_first_20_script(history.experiment_id),
                {"both charts": 1.0},
                kept=kept,
            )
            for kind, kept in (("kept by the loop", True), ("nothing kept", False))
        ),
        *(
            Case(
                f"Model page, {pages.models[name]} versions",
                f"/model?name={quote(name)}",
                (("versions listed", text_then_table(f"Versions ({pages.models[name]:,})")),),
                f"{url}/#/models/{quote(name)}",
                (("versions listed", mlflow_version_links(name, 10)),),
                limits={"versions listed": 0.7},
            )
            for name in (small, large)
        ),
        Case(
            f"Models list, {pages.fleet_models}+ models",
            "/models",
            (("models listed", text_then_table(" models")),),
            f"{url}/#/models",
            (("models listed", mlflow_model_links(10)),),
            limits={"models listed": 0.7},
        ),
        Case(
            "Run detail, 500 params and 100 metrics",
            f"/run?run_id={pages.wide_run_id}",
            (("metrics listed", text_then_table("Metrics (100)")),),
            f"{url}/#/experiments/{pages.wide_experiment_id}/runs/{pages.wide_run_id}",
            (("metrics listed", mlflow_text("metric_000")),),
            limits={"metrics listed": 0.7},
        ),
    ]


def compare_path(run_ids: tuple[str, ...], metrics: tuple[str, ...]) -> str:
    return "/compare?" + urlencode(
        [("run_ids", r) for r in run_ids] + [("metrics", m) for m in metrics]
    )


def flightdeck_charts(
    metrics: tuple[str, ...], runs: int, *, every: bool
) -> Callable[[Page], None]:
    check = (
        FLIGHTDECK_CHARTS_JS
        if every
        else FLIGHTDECK_CHARTS_JS.replace("metrics.every", "metrics.some")
    )

    def drawn(page: Page) -> None:
        page.wait_for_function(check, arg=[list(metrics), runs], polling="raf")

    return drawn


def mlflow_charts(metrics: tuple[str, ...], runs: int, *, every: bool) -> Callable[[Page], None]:
    check = MLFLOW_CHARTS_JS if every else MLFLOW_CHARTS_JS.replace("metrics.every", "metrics.some")

    def drawn(page: Page) -> None:
        page.wait_for_function(check, arg=[list(metrics), runs], polling="raf")

    return drawn


def text_then_table(text: str) -> Callable[[Page], None]:
    """A text is on the page and the first data grid has drawn every row in view."""

    def shown(page: Page) -> None:
        page.get_by_text(text).first.wait_for()
        page.wait_for_function(ROWS_PAINTED_JS, arg=TABLE_ROW_PX, polling="raf")

    return shown


def mlflow_version_links(model: str, n: int) -> Callable[[Page], None]:
    js = """([model, n]) => [...document.querySelectorAll("a[href*='/versions/']")]
        .filter(a => a.getAttribute('href')
            .includes('/models/' + encodeURIComponent(model) + '/versions/')).length >= n"""

    def shown(page: Page) -> None:
        page.wait_for_function(js, arg=[model, n], polling="raf")

    return shown


def mlflow_model_links(n: int) -> Callable[[Page], None]:
    js = """(n) => new Set([...document.querySelectorAll("a[href*='/models/']")]
        .map(a => a.getAttribute('href')).filter(h => /#\\/models\\/[^/]+$/.test(h))).size >= n"""

    def shown(page: Page) -> None:
        page.wait_for_function(js, arg=n, polling="raf")

    return shown


def text_shown(text: str) -> Callable[[Page], None]:
    def shown(page: Page) -> None:
        page.get_by_text(text).first.wait_for()

    return shown


def chart_shown() -> Callable[[Page], None]:
    def drawn(page: Page) -> None:
        page.wait_for_selector("[data-testid='stVegaLiteChart'] svg .role-mark path")

    return drawn


def mlflow_text(text: str) -> Callable[[Page], None]:
    def shown(page: Page) -> None:
        page.get_by_text(text, exact=True).first.wait_for()

    return shown


def visit(
    browser: Browser,
    url: str,
    ready: tuple[tuple[str, Callable[[Page], None]], ...],
    init_script: str = "",
    screenshot: Path | None = None,
) -> dict[str, float]:
    """Seconds from ``page.goto`` in a fresh context until each milestone held, with a
    screenshot at each when asked."""

    def shoot(page: Page, milestone: str) -> None:
        if screenshot is not None:
            take_screenshots(page, screenshot.with_name(f"{screenshot.stem}-{slug(milestone)}"))

    return timed_milestones(browser, url, ready, init_script, shoot)


def take_screenshots(page: Page, stem: Path) -> None:
    """The viewport, and each history chart (below the fold on the Compare page) on its own."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=f"{stem}.png")
    charts = page.locator(".js-plotly-plot, [data-testid='stVegaLiteChart']")
    for index in range(charts.count()):
        charts.nth(index).screenshot(path=f"{stem}-chart{index + 1}.png")


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def measure(
    urls: dict[str, str], cases: list[Case], kept: Path, fleet: Path
) -> dict[tuple[str, str, str], Timing]:
    """(case, milestone, row) -> timing; rows are cold, warm and MLflow UI.

    ``urls`` maps each case's server to its MLflow URL; a dashboard starts with the ``kept``
    histories' store or the ``fleet``'s store where its case says so."""
    seconds: dict[tuple[str, str, str], list[float]] = {}
    with chromium() as browser:
        for repetition in range(REPETITIONS):
            last = repetition == REPETITIONS - 1
            for case in cases:
                shot = SCREENSHOTS / slug(case.label) if last else None
                template = kept if case.kept else fleet if case.server == FLEET else None
                with fresh_dashboard(browser, urls[case.server], template) as dashboard_url:
                    for row in ("cold", "warm"):
                        found = visit(
                            browser,
                            dashboard_url + case.path,
                            case.ready,
                            screenshot=shot.with_name(f"{shot.name}-flightdeck-{row}")
                            if shot
                            else None,
                        )
                        for milestone, value in found.items():
                            seconds.setdefault((case.label, milestone, row), []).append(value)
                if case.mlflow_url:
                    found = visit(
                        browser,
                        case.mlflow_url,
                        case.mlflow_ready,
                        case.mlflow_init,
                        screenshot=shot.with_name(f"{shot.name}-mlflow") if shot else None,
                    )
                    for milestone, value in found.items():
                        seconds.setdefault((case.label, milestone, "MLflow UI"), []).append(value)
                progress = ", ".join(
                    f"{m} {r} {v[-1]:.2f}s" for (c, m, r), v in seconds.items() if c == case.label
                )
                print(f"  [{repetition + 1}/{REPETITIONS}] {case.label}: {progress}", flush=True)
    return {key: Timing(" · ".join(key), tuple(values)) for key, values in seconds.items()}


@contextmanager
def fresh_dashboard(browser: Browser, url: str, store_template: Path | None) -> Iterator[str]:
    """A new dashboard process on an empty data folder (or one holding ``store_template`` as
    its store), after one untimed visit of the Experiments page; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="bench-pages-") as folder:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "FLIGHTDECK_DATA_DIR": folder}
        env["FLIGHTDECK_DEV_MODE"] = "1"  # on loopback, as make run serves it
        env.pop("FLIGHTDECK_STORE_URL", None)
        for name in CREDENTIAL_VARIABLES:
            env.pop(name, None)
        if store_template is not None:
            shutil.copy(store_template, Path(folder) / "flightdeck.db")
        dashboard = start_dashboard(free_port(), env, Path(folder) / "dashboard.log")
        try:
            visit(browser, f"{dashboard.url}/experiments", (("shown", wait_for_streamlit),))
            yield dashboard.url
        finally:
            dashboard.stop()


def page_targets(cases: list[Case], timings: dict[tuple[str, str, str], Timing]) -> list[Target]:
    """Each case's limits on its cold milestones (and on its last one warm, where it has one)."""
    targets: list[Target] = []
    for case in cases:
        last_milestone = case.ready[-1][0]
        limits = case.limits or {m: NO_MLFLOW_PAGE_LIMIT_S for m, _ in case.ready}
        for milestone, limit in limits.items():
            row = "warm" if milestone == "warm" else "cold"
            measured_milestone = last_milestone if milestone == "warm" else milestone
            measured = timings[(case.label, measured_milestone, row)]
            name = f"{case.label}: {measured_milestone}, {row}"
            baseline = timings.get((case.label, measured_milestone, "MLflow UI"))
            if baseline is None:
                targets.append(seconds_target(name, measured, NO_MLFLOW_PAGE_LIMIT_S))
            else:
                targets.append(ratio_target(name, measured, baseline, limit, "MLflow UI"))
    return targets


def write_section(
    targets: list[Target], timings: dict[tuple[str, str, str], Timing], kept: KeptHistories
) -> None:
    rows = [
        "| Page · milestone | Flightdeck cold | Flightdeck warm | MLflow UI | Ratio (cold) "
        "| Limit | Met |",
        "|---|---|---|---|---:|---|---|",
    ]
    by_name = {t.name: t for t in targets}
    for case_label, milestone in dict.fromkeys((c, m) for c, m, _ in timings):
        cold = timings[(case_label, milestone, "cold")]
        warm = timings[(case_label, milestone, "warm")]
        mlflow = timings.get((case_label, milestone, "MLflow UI"))
        target = by_name.get(f"{case_label}: {milestone}, cold")
        ratio = f"{cold.median / mlflow.median:.2f}" if mlflow else "—"
        limit = target.limit if target else "—"
        met = ("**met**" if target.met else "**not met**") if target else "—"
        rows.append(
            f"| {case_label} · {milestone} | {timing_text(cold)} | {timing_text(warm)} | "
            f"{timing_text(mlflow) if mlflow else '—'} | {ratio} | {limit} | {met} |"
        )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    text = "\n".join(
        [
            SECTION_START,
            "## Issue 15: every page cold, against MLflow's nearest page",
            "",
            f"Written by `python -m bench.pages` on {time.strftime('%Y-%m-%d %H:%M UTC')}; "
            f"{REPETITIONS} repetitions, medians (min–max); load average at the end {load}.",
            "",
            (__doc__ or "").split("\n\n", 1)[1].strip(),
            "",
            *rows,
            "",
            targets_table(tuple(targets)),
            "",
            f"Kept histories: {kept.size.histories} ({kept.size.runs} runs × 2 metrics, 320 points "
            f"each) take {kept.size.bytes / 1e6:.2f} MB of points, "
            f"{kept.bytes_per_1000_runs / 1e6:.1f} MB per 1,000 such runs; keeping them took "
            f"{kept.prefetch_seconds:.0f} s of MLflow's time, once.",
            SECTION_END,
        ]
    )
    old = RESULTS_PATH.read_text(encoding="utf-8") if RESULTS_PATH.exists() else ""
    if SECTION_START in old:
        head, rest = old.split(SECTION_START, 1)
        old = head + rest.split(SECTION_END, 1)[1].lstrip("\n")
    RESULTS_PATH.write_text(old.rstrip("\n") + "\n\n" + text + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
