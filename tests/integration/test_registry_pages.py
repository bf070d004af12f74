"""The Models and Model pages through Streamlit's AppTest, against the real seeded server."""

from __future__ import annotations

import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.links import MODEL_PAGE, MODELS_PAGE
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from services.experiments.registry import DELTA_COLUMN

APP = str(PROJECT_ROOT / "app.py")
WINE = PROJECTS[0].model


def open_page(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(page)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at


def texts(at: AppTest) -> str:
    kinds = ("markdown", "caption", "info", "error", "warning", "success", "title")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


def table_with(at: AppTest, column: str):  # type: ignore[no-untyped-def]
    """The first dataframe on the page that has ``column``."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def no_html_rendered(at: AppTest) -> bool:
    return not any(m.proto.allow_html for m in at.markdown)


@pytest.fixture(autouse=True)
def seeded_env(monkeypatch: pytest.MonkeyPatch, seeded_server: ServerProcess) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", seeded_server.url)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    st.cache_data.clear()  # caches outlive an AppTest; each test reads the server afresh


# -- the models list ------------------------------------------------------------------------------


def test_models_page_lists_the_demo_models_with_their_aliases() -> None:
    at = open_page(MODELS_PAGE)
    assert not at.exception
    assert not at.error
    table = table_with(at, "Aliases").set_index("Model")
    assert {p.model for p in PROJECTS} <= set(table.index)
    assert table.loc[WINE, "Aliases"] == "champion → v3, challenger → v4"
    assert table.loc[WINE, "Latest version"] == 4
    assert "flightdeck." not in table.loc[WINE, "Tags"]


def test_models_search_filters_by_name_and_is_kept_in_the_url() -> None:
    at = open_page(MODELS_PAGE)
    at.text_input(key="models.search").input("DIABETES").run()
    assert not at.exception
    assert table_with(at, "Aliases")["Model"].tolist() == ["diabetes-regressor"]
    assert at.query_params["q"] == "DIABETES"

    linked = open_page(MODELS_PAGE, q="wine")
    assert table_with(linked, "Aliases")["Model"].tolist() == [WINE]


def test_models_search_without_a_match_says_so() -> None:
    at = open_page(MODELS_PAGE, q="no such model anywhere")
    assert not at.exception
    assert "No model name contains" in texts(at)


# -- one model ------------------------------------------------------------------------------------


def test_model_page_shows_four_versions_newest_first_with_key_metrics() -> None:
    at = open_page(MODEL_PAGE, name=WINE)
    assert not at.exception
    assert not at.error
    assert no_html_rendered(at)
    assert at.title[0].value == "wine\\-classifier"
    versions = table_with(at, "Stage")
    assert versions["Version"].tolist() == [4, 3, 2, 1]
    assert "eval_f1" in versions.columns
    assert versions.set_index("Version").loc[3, "Aliases"] == "champion"
    assert not at.get("plotly_chart")  # the chart library loads only on request
    assert "@challenger" in texts(at)


def test_the_metric_across_versions_is_drawn_on_request_and_kept_in_the_url() -> None:
    at = open_page(MODEL_PAGE, name=WINE)
    at.toggle(key="model.chart_shown").set_value(True).run()

    assert not at.exception
    assert at.get("plotly_chart")
    assert at.query_params["chart"] == ["1"] or at.query_params["chart"] == "1"
    again = open_page(MODEL_PAGE, name=WINE, chart="1")
    assert again.get("plotly_chart")


def test_model_page_compares_the_challenger_with_the_champion_by_default_with_deltas(
    seeded_server: ServerProcess,
) -> None:
    client = MlflowClient(seeded_server.url)
    runs = {
        number: client.get_run(client.get_model_version(WINE, str(number)).run_id)
        for number in (3, 4)
    }
    expected = {
        key: runs[4].data.metrics[key] - value for key, value in runs[3].data.metrics.items()
    }

    for at in (
        open_page(MODEL_PAGE, name=WINE),
        open_page(MODEL_PAGE, name=WINE, version="4", compare="3"),
    ):
        assert not at.exception
        metrics = table_with(at, DELTA_COLUMN).set_index("Metric")
        assert list(metrics.columns) == ["v3", "v4", DELTA_COLUMN]
        assert metrics[DELTA_COLUMN].to_dict() == pytest.approx(expected)
        assert metrics[DELTA_COLUMN].abs().sum() > 0
        assert "accepts every input" in texts(at)  # same features: compatible signatures


def test_choosing_versions_updates_the_url() -> None:
    at = open_page(MODEL_PAGE, name=WINE)
    at.selectbox(key="model.version").select(2).run()
    at.selectbox(key="model.compare").select(1).run()
    assert not at.exception
    assert at.query_params["version"] == "2"
    assert at.query_params["compare"] == "1"
    assert list(table_with(at, DELTA_COLUMN).columns)[:3] == ["Metric", "v1", "v2"]


def test_unknown_model_warns_and_links_back_to_the_models_list() -> None:
    at = open_page(MODEL_PAGE, name="no such model/ünï")
    assert not at.exception
    assert not at.error, at.error[0].value
    assert "no such model/ünï" in at.main.warning[0].value.replace("\\", "")
    assert any(link.proto.page.endswith("models") for link in at.get("page_link"))


def test_a_deleted_version_in_the_url_warns_and_shows_the_rest() -> None:
    at = open_page(MODEL_PAGE, name=WINE, version="9")
    assert not at.exception
    assert "Version 9 of this model does not exist" in texts(at)
    assert len(table_with(at, "Stage")) == 4


def test_model_page_works_for_an_odd_name_and_a_version_without_model_files(
    seeded_server: ServerProcess, unique_name: str
) -> None:
    client = MlflowClient(seeded_server.url)
    name = f"fraud model v2 — ünï's <img src=x onerror=alert(1)> #1 ?a=b&c {unique_name}"
    experiment_id = client.create_experiment(unique_name)
    run_id = client.create_run(experiment_id, run_name="**source**").info.run_id
    client.create_registered_model(name, description="<script>alert(1)</script>")
    client.create_model_version(name, source=f"runs:/{run_id}/nothing-here", run_id=run_id)
    wine = client.get_model_version(WINE, "4")
    client.create_model_version(
        name, source=wine.source, run_id=wine.run_id, model_id=wine.source.removeprefix("models:/")
    )

    at = open_page(MODEL_PAGE, name=name)

    assert not at.exception
    assert not at.error
    assert no_html_rendered(at)
    assert table_with(at, "Stage")["Version"].tolist() == [2, 1]
    assert "<script>alert(1)</script>" in [t.value for t in at.text]
    assert "v1 has no signature" in texts(at)  # the newest (v2) is compared with v1
