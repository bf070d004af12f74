"""Markdown injection, tried on every page: untrusted text never becomes a link or an image.

A hostile value (every payload of :data:`tests.hostile.PAYLOADS`, behind a marker word) sits in
each source of :data:`tests.hostile.SOURCES`: names, tags, descriptions and signatures in the
real MLflow server; requests, decisions and a retraining job in the app's real store; the name
of the person looking; and the URL. Every page that shows them is rendered with AppTest, and no
Markdown it renders (text, headers, captions, alerts, labels, help, tabs, expanders, page
links, progress texts, radio options) may make a link or an image that points away from the
app. The browser test (tests/e2e/test_hostile_text.py) checks the real DOM as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT, load_settings
from services.core.store import open_store
from services.retraining.engines import backend_for
from tests.hostile import (
    SOURCES,
    HostileWorld,
    build_hostile_world,
    foreign_references,
    hostile,
    page_bytes,
    page_markdown,
)

pytestmark = pytest.mark.integration

URL = hostile("fdxurl")


def pages(world: HostileWorld) -> dict[str, tuple[str, dict[str, str | list[str]]]]:
    """Every page, opened on the hostile objects and with hostile URL parameters."""
    return {
        "overview": ("pages/overview.py", {}),
        "experiments": ("pages/experiments.py", {"q": URL}),
        "runs": ("pages/runs.py", {"experiment_ids": world.experiment_id}),
        "runs-bad-link": ("pages/runs.py", {"experiment_ids": [world.experiment_id, URL]}),
        "runs-bad-filter": (
            "pages/runs.py",
            {"experiment_ids": world.experiment_id, "filter": URL, "tag": URL},
        ),
        "compare": (
            "pages/compare.py",
            {
                "run_ids": [world.run_id, world.other_run_id, URL],
                "metrics": URL,
                "version_trend": "1",
                "model": URL,
            },
        ),
        "run": ("pages/run.py", {"run_id": world.run_id}),
        "run-bad-link": ("pages/run.py", {"run_id": URL}),
        "models": ("pages/models.py", {"q": URL}),
        "model": ("pages/model.py", {"name": world.model, "version": "2", "compare": "1"}),
        "model-bad-versions": ("pages/model.py", {"name": world.model, "version": URL}),
        "model-bad-name": ("pages/model.py", {"name": URL}),
        "decision-rejected": ("pages/promotions.py", {"request": world.rejected_request_id}),
        "decision-cancelled": ("pages/promotions.py", {"request": world.cancelled_request_id}),
        "decision-pending": ("pages/promotions.py", {"request": world.open_request_id}),
        "promotions-bad-link": (
            "pages/promotions.py",
            {"request": URL, "model": URL, "version": URL, "target": URL, "kind": URL},
        ),
        "admin": ("pages/admin.py", {"model": URL, "action": URL}),
        "monitoring": ("pages/monitoring.py", {"model": world.model, "alias": URL}),
        "monitoring-bad-link": ("pages/monitoring.py", {"model": URL, "batch": URL}),
        "retraining": ("pages/retraining.py", {"job": world.job_id, "model": world.model}),
        "retraining-bad-link": ("pages/retraining.py", {"job": URL, "model": URL}),
    }


PAGE_IDS = ["frame", *pages(HostileWorld(*[""] * 11))]


@dataclass(frozen=True, slots=True)
class Rendered:
    """One page as AppTest rendered it."""

    markdown: list[tuple[str, str]]
    """Every Markdown string on it, with the element and field it is in."""
    content: bytes
    """Everything it sent, tables included."""
    exception: list[str]
    """Tracebacks, if the page crashed."""


@pytest.fixture(scope="module")
def rendered(mlflow_server: ServerProcess) -> Iterator[dict[str, Rendered]]:
    """Build the hostile world once, then render every page of :func:`pages` once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        settings = load_settings()
        store = open_store(settings.store_url)  # the store the app under test opens
        world = build_hostile_world(mlflow_server.url, store, backend_for(settings))
        store.engine.dispose()
        patch.setenv("FLIGHTDECK_DEV_USER", world.viewer)  # a hostile name in the sidebar
        st.cache_data.clear()
        results = {}
        for page_id, (page, query) in pages(world).items():
            at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
            at.session_state["dev_user"] = world.viewer.casefold()
            at.query_params.update(query)
            at.run()
            if page_id == PAGE_IDS[1]:  # the frame (sidebar) is only there on the first run
                results["frame"] = Rendered(
                    markdown=list(page_markdown(at._tree)),
                    content=page_bytes(at._tree),
                    exception=[e.value for e in at.exception],
                )
            at.switch_page(page).run()
            results[page_id] = Rendered(
                markdown=list(page_markdown(at._tree)),
                content=page_bytes(at._tree),
                exception=[e.value for e in at.exception],
            )
        yield results


@pytest.mark.parametrize("page_id", PAGE_IDS)
def test_no_untrusted_text_renders_as_a_link_or_image(
    rendered: dict[str, Rendered], page_id: str
) -> None:
    page = rendered[page_id]
    assert not page.exception, page.exception
    injected = [
        (where, text, found) for where, text in page.markdown if (found := foreign_references(text))
    ]
    assert not injected, "\n".join(
        f"{where}: {text!r} -> {found}" for where, text, found in injected
    )


def test_every_source_of_untrusted_text_reached_a_page(rendered: dict[str, Rendered]) -> None:
    """Else the test above would prove nothing about that source."""
    shown = {
        marker
        for page in rendered.values()
        for marker in SOURCES
        if marker.encode() in page.content
    }
    assert shown == set(SOURCES), {m: SOURCES[m] for m in set(SOURCES) - shown}


def test_untrusted_text_is_shown_in_markdown_not_only_in_tables(
    rendered: dict[str, Rendered],
) -> None:
    """The sources that pages put into Markdown (escaped) were really checked as Markdown."""
    in_markdown = {
        marker
        for page in rendered.values()
        for _, text in page.markdown
        for marker in SOURCES
        if marker in text
    }
    expected = {
        "fdxmodel",
        "fdxrun",
        "fdxrunuser",
        "fdxexperiment",
        "fdxsignature",
        "fdxcomment",
        "fdxcancel",
        "fdxrequester",
        "fdxviewer",
        "fdxurl",
    }
    assert expected <= in_markdown, expected - in_markdown


def test_the_frame_shows_the_person_looking_as_escaped_text(
    rendered: dict[str, Rendered],
) -> None:
    """The sidebar (``app.py``) names the person, as plain text rather than Markdown."""
    frame = rendered["frame"]
    assert hostile("fdxviewer").casefold().encode() in frame.content  # as signed in
    assert not any("fdxviewer" in text for _, text in frame.markdown)
