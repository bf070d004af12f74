"""AppTest: filter runs, select some, and open the compare view, all on the seeded server."""

from __future__ import annotations

import pytest
import streamlit as st
from mlflow import MlflowClient
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import PROJECTS
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT


@pytest.fixture(autouse=True)
def seeded_env(monkeypatch: pytest.MonkeyPatch, seeded_server: ServerProcess) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", seeded_server.url)
    st.cache_data.clear()


def test_filter_then_select_then_compare(seeded_server: ServerProcess) -> None:
    wine = MlflowClient(seeded_server.url).get_experiment_by_name(PROJECTS[0].experiment)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/runs.py")
    at.query_params["experiment_ids"] = wine.experiment_id
    at.run()
    assert len(at.dataframe[0].value) == 29

    at.text_input(key="runs.filter").input(
        "params.model_family = 'linear' or params.max_depth = '2'"
    ).run()
    table = at.dataframe[0].value
    assert len(table) == 4 + 6  # 4 linear runs, 6 sweep runs of depth 2
    assert at.query_params["filter"] == "params.model_family = 'linear' or params.max_depth = '2'"

    chosen = list(table.index[:3])
    at.text_input(key="runs.paste").input(" ".join(chosen)).run()
    assert not at.code  # the link's code block loads only on request
    at.button(key="runs.copy_link").click().run()
    link = at.code[0].value
    assert all(f"selected={run_id}" in link for run_id in chosen) and "filter=params." in link
    compare = at.button(key="runs.compare")
    assert compare.label == "Compare 3 runs" and not compare.disabled
    compare.click().run()

    assert not at.exception
    assert at.title[0].value == "Compare runs"
    assert at.get("vega_lite_chart"), "compare view drew no chart"
    shown = {row for row in at.dataframe[0].value["Run ID"]}
    assert shown == set(chosen)


def test_invalid_filter_shows_mlflows_reason_and_keeps_the_last_results(
    seeded_server: ServerProcess,
) -> None:
    wine = MlflowClient(seeded_server.url).get_experiment_by_name(PROJECTS[0].experiment)
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/runs.py")
    at.query_params["experiment_ids"] = wine.experiment_id
    at.run()
    at.text_input(key="runs.filter").input("metrics.eval_f1 >>> 2").run()
    assert not at.exception
    assert "MLflow cannot use this filter" in at.error[0].value
    assert "Showing the last results that worked." in [c.value for c in at.caption]
    assert len(at.dataframe[0].value) == 29
