"""AppTest: the overview on the demo data, and presentation mode as a viewer."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.formatting import escape_markdown
from services.core.processes import ServerProcess, free_port, start_mlflow_server
from tests.integration.conftest import app_as

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("fresh_app")]


def overview(user: str, **query: str) -> AppTest:
    """A new session as ``user`` on the landing page."""
    return app_as(user, **query)


def test_the_landing_page_shows_each_demo_model_with_its_health(
    seeded_server: ServerProcess,
) -> None:
    at = overview("omar")
    assert at.title[0].value == "Fleet overview"
    headings = [m.value for m in at.markdown]
    for project in PROJECTS:
        assert f"### {escape_markdown(project.model)}" in headings
    metrics = {m.label: m.value for m in at.metric}
    assert int(metrics["Models"]) >= len(PROJECTS)
    assert int(metrics["In drift alarm"]) >= len(PROJECTS)  # the demo ends red
    assert any(m.startswith("**@champion v3** set outside Flightdeck") for m in headings)
    changes = [m for m in headings if m.startswith("- ")]
    assert any("went into drift alarm on" in c for c in changes)
    assert {b.label for b in at.get("download_button")} == {
        "Models (CSV)",
        "Changes (CSV)",
        "Report (HTML)",
        "Report (PDF)",
    }


def test_presentation_mode_is_read_only_for_a_viewer(seeded_server: ServerProcess) -> None:
    at = overview("vic", present="1", refresh="30")
    assert at.title[0].value == "Model health"
    assert not at.button and not at.get("download_button") and not at.toggle
    assert not at.main.selectbox and not at.text_input
    assert not at.get("page_link") or all(
        link.label in {"Overview"} for link in at.get("page_link")
    )
    headings = [m.value for m in at.markdown]
    assert f"### {escape_markdown(PROJECTS[0].model)}" in headings


def test_rotation_shows_one_card_at_a_time(seeded_server: ServerProcess) -> None:
    at = overview("vic", present="1", rotate="1")
    cards = [m.value for m in at.markdown if m.value.startswith("### ")]
    assert len(cards) == 1
    assert any("Showing one model at a time" in c.value for c in at.caption)


def test_two_models_with_the_same_history_both_get_their_card(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, unique_name: str
) -> None:
    """Identical figures would share Streamlit's auto-generated id and crash the page. A server
    of their own, so both models are sure to get a card."""
    from tests.integration.test_promotion import make_model

    server = start_mlflow_server(tmp_path / "mlflow", free_port())
    try:
        client = MlflowClient(server.url)
        twins = [f"{unique_name}-a", f"{unique_name}-b"]
        for name in twins:
            make_model(client, name, [0.8, 0.8])  # the same eval_f1 history, version by version
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)

        at = overview("vic")
    finally:
        server.stop()

    assert not at.exception, at.exception
    headings = [m.value for m in at.markdown]
    assert all(f"### {escape_markdown(name)}" in headings for name in twins)
