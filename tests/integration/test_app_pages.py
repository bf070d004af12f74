"""Every page through Streamlit's AppTest, against the real seeded server."""

from __future__ import annotations

import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.processes import ServerProcess, free_port, start_mlflow_server
from services.core.settings import PROJECT_ROOT
from tests.hostile import shown

APP = str(PROJECT_ROOT / "app.py")
PAGES = ["pages/experiments.py", "pages/runs.py"]  # run and compare have their own tests


def run_app(page: str | None = "pages/experiments.py", **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page:
        at.switch_page(page)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
    return at


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for kind in ("markdown", "caption", "info", "error", "warning", "title")
        for e in at.get(kind)
    ]
    return "\n".join(str(p) for p in parts)


@pytest.fixture(autouse=True)
def seeded_env(monkeypatch: pytest.MonkeyPatch, seeded_server: ServerProcess) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", seeded_server.url)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    st.cache_data.clear()  # caches outlive an AppTest; each test reads the server afresh


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_without_exception(page: str, seeded_server: ServerProcess) -> None:
    wine = MlflowClient(seeded_server.url).get_experiment_by_name(PROJECTS[0].experiment)
    at = run_app(page, experiment_ids=wine.experiment_id)
    assert not at.exception
    assert not at.error


def test_experiments_page_lists_demo_experiments_with_run_counts() -> None:
    at = run_app()
    table = at.dataframe[0].value
    by_name = table.set_index("Name")
    for project in PROJECTS:
        assert by_name.loc[project.experiment, "Runs"] == "29"


def test_the_frame_shows_the_server_and_the_data_freshness() -> None:
    at = run_app(None)  # the landing page, through app.py
    assert "Reachable" in "\n".join(c.value for c in at.sidebar.caption)
    assert "Data fetched" in "\n".join(c.value for c in at.sidebar.caption)


def test_search_by_name_filters_and_lands_in_the_url() -> None:
    at = run_app()
    at.text_input(key="experiments.q").input("DIABETES").run()
    assert at.dataframe[0].value["Name"].tolist() == ["diabetes-regression"]
    assert at.query_params["q"] == "DIABETES"


def test_search_from_a_shared_url_is_applied() -> None:
    at = run_app(q="wine")
    assert at.dataframe[0].value["Name"].tolist() == ["wine-classification"]


def test_search_with_no_match_says_so() -> None:
    at = run_app(q="no-such-experiment-xyz")
    assert "No experiment name contains" in texts(at)


def test_deleted_experiments_appear_only_when_asked(
    seeded_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(seeded_server.url)
    client.delete_experiment(client.create_experiment(unique_name))
    at = run_app(q=unique_name)
    assert "No experiment name contains" in texts(at)
    at = run_app(q=unique_name, deleted="1")
    assert at.dataframe[0].value["Name"].tolist() == [unique_name]


def test_runs_page_shows_the_experiments_runs(seeded_server: ServerProcess) -> None:
    wine = MlflowClient(seeded_server.url).get_experiment_by_name(PROJECTS[0].experiment)
    at = run_app("pages/runs.py", experiment_id=wine.experiment_id)  # the older link form
    table = at.dataframe[0].value
    assert len(table) == 29
    assert "metrics.eval_f1" in table.columns
    assert at.multiselect(key="runs.experiments").value == [wine.experiment_id]
    assert wine.tags["mlflow.note.content"] in [t.value for t in at.text]


def test_unknown_experiment_in_the_url_is_not_found_with_a_way_back() -> None:
    at = run_app("pages/runs.py", experiment_ids="99999")
    assert "Experiment 99999 was not found" in at.main.warning[0].value
    assert not at.exception
    assert any(
        link.proto.page == "pages/experiments.py" or "experiments" in link.proto.page
        for link in at.get("page_link")
    )


def test_wrong_uri_scheme_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "ftp://mlflow.example.com")
    at = run_app(None)
    assert not at.exception
    assert "is not an MLflow tracking server URL" in at.error[0].value


def test_unreachable_server_shows_banner_then_retry_recovers(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = free_port()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    at = run_app(None)
    assert not at.exception
    assert shown(at.error[0].value).startswith(f"Cannot reach MLflow at http://127.0.0.1:{port}")
    assert "Not reachable" in "\n".join(c.value for c in at.sidebar.caption)
    assert not at.title  # the page itself did not run

    server = start_mlflow_server(tmp_path_factory.mktemp("late"), port)
    try:
        at.button[0].click().run()
        assert not at.error
        assert at.title[0].value == "Fleet overview"  # the landing page, on the new server
    finally:
        server.stop()
