"""The overview as a document that can leave the building: self-contained HTML, and PDF.

The HTML carries every chart as inline SVG (drawn by Vega, through ``vl-convert``), so it opens
with no network and runs no script; all text is escaped. The PDF is that HTML printed by
headless Chromium, when it is installed.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path

from services.core.errors import FlightdeckError
from services.core.processes import CHROMIUM_ARGS
from services.experiments.charts import APP_THEME, PALETTE
from services.experiments.vega import svg
from services.governance.config import DriftThresholds
from services.overview.charts import drift_sparkline, metric_trend
from services.overview.fleet import ModelHealth, Overview

PDF_TIMEOUT_S = 60.0
CHART_WIDTH = 300
"""Pixels: a card's charts fit a 20 rem card."""
THEME_CSS = (
    f"body{{font-family:sans-serif;color:{APP_THEME.get('textColor', 'inherit')};"
    f"background:{APP_THEME.get('backgroundColor', 'inherit')};max-width:70rem;margin:2rem auto}}"
    f"h1,h2{{color:{APP_THEME.get('primaryColor', 'inherit')}}}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(20rem,1fr));gap:1rem}"
    f".card{{border:1px solid {APP_THEME.get('secondaryBackgroundColor', 'inherit')};"
    "border-radius:.5rem;padding:1rem;break-inside:avoid}"
    ".counts{display:flex;gap:3rem}.counts b{font-size:2rem;display:block}"
    f".red{{color:{PALETTE[3]}}}.amber{{color:{PALETTE[1]}}}.green{{color:{PALETTE[2]}}}"
)
"""The app's theme (``.streamlit/config.toml``) and the charts' palette, for the export."""


NO_CHROMIUM = (
    "PDF export needs Chromium, which is not installed here. Install it (Debian: "
    "`sudo apt-get install chromium`; `make test` does this) and reload, or download the HTML "
    "report and print it from your browser."
)


class ExportError(FlightdeckError):
    """An export could not be produced; the message says what to do."""


def report_html(overview: Overview, thresholds: DriftThresholds, model: str | None = None) -> str:
    """The fleet (or one model) as one self-contained HTML page."""
    e = html.escape
    models = [h for h in overview.models if model is None or h.name == model]
    counts = overview.counts
    title = f"Model health: {model}" if model else "Model health: the fleet"
    changes = [c for c in overview.changes if model is None or c.model == model]
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>{e(title)}</title><style>{THEME_CSS}</style>"
        "</head><body>"
        f"<h1>{e(title)}</h1><p>Read {overview.at:%Y-%m-%d %H:%M} UTC by Flightdeck.</p>"
        + (
            ""
            if model
            else "<div class=counts>"
            f"<div><b>{counts.models}</b>models</div><div><b>{counts.in_alarm}</b>in drift alarm"
            f"</div><div><b>{counts.pending_approvals}</b>pending approvals</div>"
            f"<div><b>{counts.retrains_this_week}</b>retrains this week</div></div>"
        )
        + "<div class=cards>"
        + "".join(_card(h, thresholds) for h in models)
        + "</div><h2>What changed in the last 7 days</h2><ul>"
        + "".join(f"<li>{e(c.text)}</li>" for c in changes)
        + ("" if changes else "<li>Nothing this week.</li>")
        + "</ul></body></html>"
    )


def chromium_path() -> str | None:
    """Where headless Chromium is, if it is installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def html_to_pdf(page: str) -> bytes:
    """Print an HTML page to PDF with headless Chromium.

    Raises:
        ExportError: Chromium is not installed, or it failed.
    """
    chromium = chromium_path()
    if chromium is None:
        raise ExportError(NO_CHROMIUM)
    with tempfile.TemporaryDirectory() as scratch:
        source, target = Path(scratch) / "report.html", Path(scratch) / "report.pdf"
        source.write_text(page, encoding="utf-8")
        command = [
            chromium,
            "--headless",
            *CHROMIUM_ARGS,
            f"--user-data-dir={scratch}/profile",
            "--no-pdf-header-footer",
            f"--print-to-pdf={target}",
            source.as_uri(),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=PDF_TIMEOUT_S, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExportError(f"Chromium could not print the PDF: {exc}") from exc
        if result.returncode != 0 or not target.exists():
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise ExportError(
                f"Chromium could not print the PDF (exit {result.returncode}): {last}"
            )
        return target.read_bytes()


def _card(health: ModelHealth, thresholds: DriftThresholds) -> str:
    e = html.escape
    champion = (
        f"@champion v{health.champion}"
        + (f" since {health.champion_since:%d %b}" if health.champion_since else "")
        + (f", approved by {', '.join(health.approved_by)}" if health.approved_by else "")
        if health.champion is not None
        else "no @champion yet"
    )
    charts = ""
    if health.metric_by_version:
        charts += svg(metric_trend(health), CHART_WIDTH)
    if health.drift_shares:
        charts += svg(drift_sparkline(health, thresholds), CHART_WIDTH)
    job = health.last_retrain
    retrain = f"{job.created_at:%d %b} ({job.trigger}): {job.status}" if job else "none yet"
    return (
        f"<div class=card><h2>{e(health.name)}</h2>"
        f"<p class={e(health.drift.level)}><b>Drift: {e(health.drift.level)}</b> — "
        f"{e(health.drift.reason)}</p><p>{e(champion)}</p>{charts}"
        f"<p>Last retrain: {e(retrain)}<br>Pending approvals: {health.pending_approvals}</p>"
        "</div>"
    )
