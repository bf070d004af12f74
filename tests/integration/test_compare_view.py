"""The Compare view against a real MLflow server: bulk histories, and the page through AppTest."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from mlflow import MlflowClient
from mlflow.entities import Metric
from streamlit.testing.v1 import AppTest

from jobs.seed_demo import HISTORY_STEPS, PROJECTS
from services.core.gateway import BULK_HISTORY_PATH, TrackingGateway
from services.core.processes import ServerProcess
from services.core.settings import PROJECT_ROOT
from tests.vega_spec import shown_layers

APP = str(PROJECT_ROOT / "app.py")
COMPARE = "pages/compare.py"


class CountingSession(requests.Session):
    """A real HTTP session that counts its GET requests by path."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def get(self, url: str | bytes, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.paths.append(str(url))
        return super().get(url, **kwargs)


def test_bulk_history_of_150_runs_takes_two_requests_and_keeps_every_point(
    mlflow_server: ServerProcess, settings_for: Any, unique_name: str
) -> None:
    client = MlflowClient(mlflow_server.url)
    experiment_id = client.create_experiment(unique_name)
    steps = 30
    run_ids = []
    for index in range(150):
        run_id = client.create_run(experiment_id, run_name=f"r{index}").info.run_id
        client.log_batch(
            run_id,
            metrics=[
                Metric("loss", index + step / 100, 1_000 + step, step) for step in range(steps)
            ],
        )
        run_ids.append(run_id)

    session = CountingSession()
    histories = TrackingGateway(settings_for(mlflow_server.url), session=session).metric_histories(
        run_ids, "loss"
    )

    assert [path for path in session.paths if BULK_HISTORY_PATH in path] == session.paths
    assert len(session.paths) == 2  # 100 + 50 runs, never one request per run
    assert set(histories) == set(run_ids)
    for index, run_id in enumerate(run_ids):
        points = histories[run_id]
        assert [p.step for p in points] == list(range(steps))
        assert points[-1].value == pytest.approx(index + (steps - 1) / 100)


# -- the page -------------------------------------------------------------------------------------


@pytest.fixture
def seeded_env(monkeypatch: pytest.MonkeyPatch, seeded_server: ServerProcess) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", seeded_server.url)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    return seeded_server.url


@pytest.fixture
def sweep_children(seeded_env: str) -> list[Any]:
    """Three child runs of the wine sweep, which share every param but three."""
    client = MlflowClient(seeded_env)
    wine = client.get_experiment_by_name(PROJECTS[0].experiment)
    children = client.search_runs(
        [wine.experiment_id],
        filter_string="tags.mlflow.parentRunId != ''",
        order_by=["attributes.run_name ASC"],
        max_results=3,
    )
    assert len(children) == 3
    return list(children)


def open_compare(**query: str | list[str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(COMPARE)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    return at


def test_compare_link_shows_differing_params_metrics_and_charts(sweep_children: list[Any]) -> None:
    run_ids = [run.info.run_id for run in sweep_children]
    at = open_compare(run_ids=run_ids, metrics="train_loss")

    assert not at.exception
    assert not at.error
    assert not at.main.warning
    overview, params, metrics = (frame.value for frame in at.dataframe[:3])
    assert overview["Run ID"].tolist() == run_ids
    differing = {
        key
        for key in sweep_children[0].data.params
        if len({run.data.params.get(key) for run in sweep_children}) > 1
    }
    assert set(params["Param"]) == differing
    assert "n_estimators" not in set(params["Param"])  # the same in every sweep run
    metric_rows = metrics.set_index("Metric")
    assert metric_rows.loc["train_loss", "Better"] == "lower"
    assert metric_rows.loc["eval_accuracy", "Best run"]
    assert len(at.get("vega_lite_chart")) == 1  # the history
    assert not at.get("plotly_chart")  # plotly's charts are drawn on request
    assert at.query_params["metrics"] == "train_loss"
    assert not at.code  # the link's code block loads only on request
    at.button(key="compare.copy_link").click().run()
    assert at.code[0].value.endswith("&metrics=train_loss")

    at.toggle(key="compare.across_runs").set_value(True).run()
    at.toggle(key="version_metrics.version_trend").set_value(True).run()
    # parallel coordinates, scatter, box plot, version trend (and the history, in Vega-Lite)
    assert len(at.get("plotly_chart")) == 4
    assert at.query_params["across_runs"] == "1"
    assert at.query_params["version_trend"] == "1"


def test_history_chart_has_a_line_per_run_with_every_step(sweep_children: list[Any]) -> None:
    run_ids = [run.info.run_id for run in sweep_children]
    at = open_compare(run_ids=run_ids, metrics="train_loss")
    lines = shown_layers(at.get("vega_lite_chart")[0])["lines"]
    names = [run.info.run_name for run in sweep_children]
    assert list(dict.fromkeys(row["run"] for row in lines)) == names
    assert all(sum(row["run"] == name for row in lines) == HISTORY_STEPS for name in names)


def test_showing_all_params_lands_in_the_url(sweep_children: list[Any]) -> None:
    at = open_compare(run_ids=[run.info.run_id for run in sweep_children])
    at.toggle(key="compare.only_differences").set_value(False).run()
    assert not at.exception
    assert "n_estimators" in set(at.dataframe[1].value["Param"])
    assert at.query_params["all_params"] == "1"


def test_an_unknown_run_id_is_reported_and_the_others_still_show(
    sweep_children: list[Any],
) -> None:
    unknown = "0123456789abcdef0123456789abcdef"
    run_ids = [run.info.run_id for run in sweep_children[:2]]
    at = open_compare(run_ids=[*run_ids, unknown, "not-a-run-id"])

    assert not at.exception
    assert not at.error
    assert unknown in at.main.warning[0].value.replace("\\", "")
    assert "not\\-a\\-run\\-id" in at.main.warning[0].value  # Markdown-escaped, shown literally
    assert at.dataframe[0].value["Run ID"].tolist() == run_ids


def test_fewer_than_two_valid_runs_points_to_the_runs_page(sweep_children: list[Any]) -> None:
    at = open_compare(run_ids=[sweep_children[0].info.run_id, "f" * 32])
    assert not at.exception
    assert "nothing to compare" in at.info[0].value
    assert any("runs" in link.proto.page for link in at.get("page_link"))


def test_no_runs_in_the_link_asks_for_runs() -> None:
    at = open_compare()
    assert not at.exception
    assert "at least two runs" in at.info[0].value


def test_version_trend_marks_the_alias_holders(sweep_children: list[Any]) -> None:
    at = open_compare(run_ids=[run.info.run_id for run in sweep_children], version_trend="1")
    assert at.selectbox(key="compare.model").value == PROJECTS[0].model
    trend = json.loads(at.get("plotly_chart")[-1].proto.spec)
    holders = trend["data"][1]
    assert holders["x"] == [3, 4]
    assert holders["text"] == ["@champion", "@challenger"]


def test_running_failed_and_non_finite_runs_render_without_error(
    seeded_env: str, unique_name: str
) -> None:
    client = MlflowClient(seeded_env)
    experiment_id = client.create_experiment(unique_name)
    running = client.create_run(experiment_id, run_name="<b>running</b>").info.run_id
    client.log_batch(
        running,
        metrics=[
            Metric("loss", value, 1_000 + step, step)
            for step, value in enumerate([1.0, float("nan"), float("inf"), 0.5])
        ],
    )
    failed = client.create_run(experiment_id, run_name="failed").info.run_id
    client.set_terminated(failed, "FAILED")

    at = open_compare(run_ids=[running, failed], metrics="loss")

    assert not at.exception
    assert not at.error
    assert at.dataframe[0].value["Status"].tolist() == ["RUNNING", "FAILED"]
    # NaN, and +inf (which MLflow's SQL store keeps as the largest float), are left out
    assert "2 NaN or infinite values not drawn." in [c.value for c in at.caption]
    history = shown_layers(at.get("vega_lite_chart")[0])
    assert history["lines"][0]["run"] == "<b>running</b>"  # a value Vega draws as text
