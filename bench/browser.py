"""A real browser for the benchmark: Debian's chromium driven by Playwright, as the e2e tests do.

Every timed visit opens a new browser context (no cookies, cache or storage from earlier visits)
and measures from ``page.goto`` until a condition on the page holds.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright

from services.core.processes import CHROMIUM_ARGS

VIEWPORT = {"width": 1600, "height": 1000}
VISIT_TIMEOUT_MS = 120_000
STREAMLIT_READY = "[data-testid='stApp'][data-test-script-state='notRunning']"
STREAMLIT_CONNECTED = "[data-test-connection-state='CONNECTED']"
STREAMLIT_SKELETON = "[data-testid='stSkeleton']"

Condition = Callable[[Page], None]
"""Waits (Playwright's own waiting) until the page shows what is measured; raises on timeout."""


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, closed on exit."""
    executable = shutil.which("chromium")
    if executable is None:
        raise RuntimeError("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def timed_visit(browser: Browser, url: str, condition: Condition, init_script: str = "") -> float:
    """Seconds from ``page.goto(url)`` in a fresh context until ``condition`` holds.

    ``init_script`` runs in the page before any of its own scripts (e.g. to preset storage).
    """
    return timed_milestones(browser, url, (("shown", condition),), init_script)["shown"]


def timed_milestones(
    browser: Browser,
    url: str,
    milestones: tuple[tuple[str, Condition], ...],
    init_script: str = "",
    after_each: Callable[[Page, str], None] | None = None,
) -> dict[str, float]:
    """Seconds from ``page.goto(url)`` in a fresh context until each (name, condition) held,
    in order; ``after_each`` runs untimed once a milestone is reached (e.g. a screenshot)."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    if init_script:
        context.add_init_script(init_script)
    try:
        page = context.new_page()
        page.set_default_timeout(VISIT_TIMEOUT_MS)
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        seconds: dict[str, float] = {}
        for name, condition in milestones:
            condition(page)
            seconds[name] = time.perf_counter() - started
            if after_each is not None:
                after_each(page, name)
        return seconds
    finally:
        context.close()


@contextmanager
def open_page(browser: Browser, url: str) -> Iterator[Page]:
    """A page in a fresh context, already at ``url``; the context is closed on exit."""
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        page = context.new_page()
        page.set_default_timeout(VISIT_TIMEOUT_MS)
        page.goto(url, wait_until="commit")
        yield page
    finally:
        context.close()


def wait_for_streamlit(page: Page) -> None:
    """The script finished, the socket is connected, and no skeleton is left."""
    page.wait_for_selector(STREAMLIT_READY)
    page.wait_for_selector(STREAMLIT_CONNECTED)
    page.wait_for_function(f"() => document.querySelectorAll({STREAMLIT_SKELETON!r}).length === 0")
    page.wait_for_selector(STREAMLIT_READY)
